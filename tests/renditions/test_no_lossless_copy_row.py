"""A study whose original was received lossy-compressed (the demo's NM "Whole Body Bone"): its
page's Lossless row read "Lossless copy of a lossy original - same pixels as the original, not
diagnostic-grade" (a label of a copy that does not exist) with "Not available", then "The original
is already lossy-compressed: a lossless copy would not be diagnostic-grade.", and a bare "Not
offered" (found by QA). The row now makes one statement, "No lossless copy: the original is
lossy-compressed", and its Download cell says why nothing is offered. A study some of whose images
have a lossless copy keeps its row as it was."""

from __future__ import annotations

import re

import pytest

from apps.renditions.models import Kind, Rendition, Status
from tests.renditions.test_lossless_of_lossy_label import LOSSLESS_OF_LOSSY, LOSSY_ORIGINAL, lossy_study  # noqa: F401

pytestmark = pytest.mark.django_db

NO_COPY = "No lossless copy: the original is lossy-compressed"
WHY_NOT = "Not offered: no lossless copy is made of an original received lossy-compressed"


def _cells(body: str, kind: str) -> list[str]:
    row = re.search(rf'<tr data-testid="rendition-{kind}">(.*?)</tr>', body, re.S).group(1)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_a_lossy_originals_lossless_row_says_there_is_no_copy_and_why_it_is_not_offered(
        lossy_study, clinician_a, client_as):  # noqa: F811
    assert Rendition.objects.get(study=lossy_study, kind=Kind.LOSSLESS).status == Status.UNAVAILABLE
    body = client_as(clinician_a).get(lossy_study.get_absolute_url()).content.decode()
    _name, state, codec, size, ratio, download = _cells(body, "lossless")
    assert state == NO_COPY  # one statement: no label of a copy, no "Not available", no second line
    assert (codec, size, ratio) == ("—", "—", "—")
    assert download == WHY_NOT
    assert LOSSLESS_OF_LOSSY not in body and "Not available" not in body
    assert "already lossy-compressed: a lossless copy" not in body
    assert _cells(body, "original")[1] == LOSSY_ORIGINAL  # the original keeps its label


def test_a_study_with_some_lossless_copies_keeps_its_row(lossy_study, clinician_a, client_as):  # noqa: F811
    """A lossless copy made for some images (a study partly received lossy): its label and state as
    before, nothing said of "no lossless copy"."""
    Rendition.objects.filter(study=lossy_study, kind=Kind.LOSSLESS).update(
        status=Status.PARTIAL, files_ready=1, bytes=1000, original_bytes=2000, ratio=0.5)
    body = client_as(clinician_a).get(lossy_study.get_absolute_url()).content.decode()
    state = _cells(body, "lossless")[1]
    assert state.startswith(LOSSLESS_OF_LOSSY) and NO_COPY not in body and WHY_NOT not in body
