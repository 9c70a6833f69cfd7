"""The study page's renditions footnote said "The lossless copy decodes to exactly the original
pixels" on the page of a study with no lossless copy (a lossy original, such as the demo's NM
"Whole Body Bone"): it says so only where the page offers a lossless copy (found by QA)."""

from __future__ import annotations

import pytest

from tests.sharing.test_not_offered_says_why import _footnote, _page, _study

pytestmark = pytest.mark.django_db

LOSSLESS_NOTE = "The lossless copy decodes to exactly the original pixels."


def test_the_lossless_note_only_where_a_lossless_copy_is_offered(org_a, case, clinician_a, client_as):
    without = _study(org_a, case, ["preview"])  # a lossy original: no lossless copy is made
    footnote = _footnote(_page(client_as(clinician_a), without))
    assert "not for diagnosis" in footnote and LOSSLESS_NOTE not in footnote
    with_lossless = _study(org_a, case, ["preview", "lossless"])
    assert LOSSLESS_NOTE in _footnote(_page(client_as(clinician_a), with_lossless))
