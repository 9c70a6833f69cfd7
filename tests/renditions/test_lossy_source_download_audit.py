"""The audit record of a lossless zip all of originals received lossy said plain ``rendition:
lossless`` and the audit page "Lossless compressed DICOM", though the zip is named
``_LossySource`` and labelled as those originals (5bc7b6d, bd03224): an auditor reading the trail
believed a lossless copy had left. The record says what went out now: ``details.lossy_source``
("all"; "some" for a mixed case's zip), ``rendition`` staying the machine value counting and
resumes key on; the audit page and the FHIR export say it too."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.audit import actions
from apps.audit.models import AuditEvent
from tests.audit.test_page import _visible_cells
from tests.renditions.test_all_lossy_case_zip import _lossless, lossy_case  # noqa: F401 - a fixture
from tests.renditions.test_mixed_and_unavailable_packages import mixed_case  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

ALL_LOSSY = "Originals as received, lossy compressed (no lossless copy possible)"
SOME_LOSSY = "Lossless compressed DICOM; some images lossy-compressed at the source"


def _download_event(case) -> AuditEvent:
    return AuditEvent.objects.filter(action=actions.DOWNLOAD_COMPLETED, case_ref=case.public_id).latest("seq")


def test_an_all_lossy_cases_lossless_zip_is_recorded_as_lossy_originals(lossy_case, clinician_a,  # noqa: F811
                                                                        admin_a, client_as):
    _lossless(client_as(clinician_a), lossy_case)
    event = _download_event(lossy_case)
    assert event.details["rendition"] == "lossless"  # the kind asked for: counting and resumes key on it
    assert event.details["lossy_source"] == "all"
    # the audit page says what left, not "Lossless compressed DICOM"
    admin = client_as(admin_a)
    html = admin.get(reverse("audit:event_list"), {"action": actions.DOWNLOAD_COMPLETED}).content.decode()
    (row,) = _visible_cells(html)
    assert row[2] == f"{actions.label(actions.DOWNLOAD_COMPLETED)}{ALL_LOSSY}{actions.DOWNLOAD_COMPLETED}"
    assert "Lossless compressed DICOM" not in row[2]
    # and so does its FHIR AuditEvent (the details, as every event's are)
    response = admin.post(reverse("audit:export_fhir"), {"action": actions.DOWNLOAD_COMPLETED})
    bundle = json.loads(b"".join(response.streaming_content))
    [resource] = [e["resource"] for e in bundle["entry"]]
    details = {d["type"]: d["valueString"] for entity in resource["entity"] for d in entity.get("detail", [])}
    assert details["rendition"] == "lossless" and details["lossy_source"] == "all"


def test_a_mixed_cases_lossless_zip_is_recorded_as_partly_lossy(mixed_case, clinician_a, admin_a,  # noqa: F811
                                                                client_as):
    case = mixed_case[0]
    _lossless(client_as(clinician_a), case)
    event = _download_event(case)
    assert event.details["rendition"] == "lossless" and event.details["lossy_source"] == "some"
    html = client_as(admin_a).get(reverse("audit:event_list"),
                                  {"action": actions.DOWNLOAD_COMPLETED}).content.decode()
    (row,) = _visible_cells(html)
    assert SOME_LOSSY in row[2]


def test_a_diagnostic_studys_lossless_and_a_lossy_cases_original_zip_say_nothing_more(ct_study, lossy_case,  # noqa: F811
                                                                                      clinician_a, client_as):
    client = client_as(clinician_a)
    url = reverse("renditions:study_download", kwargs={"study_id": ct_study.public_id}) + "?rendition=lossless"
    response = client.get(url)
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = AuditEvent.objects.filter(action=actions.DOWNLOAD_COMPLETED, study_ref=ct_study.public_id).latest("seq")
    assert event.details["rendition"] == "lossless" and "lossy_source" not in event.details
    # the originals themselves, as received: the rendition asked for is what went out
    url = reverse("renditions:case_download", kwargs={"case_id": lossy_case.public_id}) + "?rendition=original"
    response = client.get(url)
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = _download_event(lossy_case)
    assert event.details["rendition"] == "original" and "lossy_source" not in event.details
