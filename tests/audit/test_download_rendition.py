"""The audit page says what a download was of (the original DICOM, a preview, the education
copy): it was only in the CSV's details (``"rendition": "original"``), and every row read
"Download completed"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit import actions
from apps.audit.services import record
from tests.audit.test_page import _visible_cells
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("rendition", "shown"), [
    ("original", "Original DICOM"),
    ("lossless", "Lossless compressed DICOM"),
    ("preview", "Preview (not for diagnosis)"),
    ("education", "Education copy"),
])
@pytest.mark.parametrize("action", [actions.DOWNLOAD_COMPLETED, actions.DOWNLOAD_INCOMPLETE])
def test_a_downloads_row_names_its_rendition(org_a, admin_a, clinician_a, client_as, rendition, shown, action):
    study = StudyFactory(organization=org_a)
    # the details the downloads interface records (apps.renditions.views._serve)
    record(action=action, actor=clinician_a, organization=org_a, target=study,
           details={"scope": "study", "rendition": rendition, "grant": "", "total_bytes": 10, "range_start": 0,
                    "range_end": 9, "bytes_sent": 10, "completed": action == actions.DOWNLOAD_COMPLETED})
    html = client_as(admin_a).get(reverse("audit:event_list"), {"action": action}).content.decode()
    (row,) = _visible_cells(html)
    assert row[2] == f"{actions.label(action)}{shown}{action}"  # its label, what it was of, its code


def test_other_rows_and_unknown_renditions_add_nothing(org_a, clinician_a):
    assert actions.event_detail(actions.DOWNLOAD_COMPLETED, {"rendition": "<script>"}) == ""
    assert actions.event_detail(actions.DOWNLOAD_COMPLETED, {}) == ""
    assert actions.event_detail(actions.EDUCATION_VIEWED, {"rendition": "education"}) == ""
    assert actions.event_detail(actions.DOWNLOAD_COMPLETED, {"rendition": ["original"]}) == ""
