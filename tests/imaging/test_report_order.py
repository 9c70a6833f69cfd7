"""The per-file report lists the lines that ask most of the uploader first, the same way on the
upload's report page, the study page and the upload page's live lines (the status JSON): what
was not imported (problems), then what was imported otherwise than asked or with something to
check (warnings), then what is there for information (notes: already stored), then the files
ingested with nothing to say; each line carries its severity. Warnings (a file kept with a
warning, put into no case, a duplicate of a study in another case) came after the notes and the
files ingested, in the order read: on the thousandth line of a zip."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.imaging.models import IngestFileResult, UploadState
from apps.imaging.services import DUPLICATE_ELSEWHERE
from apps.organizations.models import Role
from tests.factories import CaseFactory, IngestJobFactory, StudyFactory, UploadFactory, member

pytestmark = pytest.mark.django_db

SAME = "same SOPInstanceUID and same bytes as a stored instance"
#: (path, outcome, reason), in the order the files were read
READ = [
    ("scan/ok.dcm", "ingested", ""),
    ("scan/again.dcm", "duplicate", SAME),
    ("scan/short.dcm", "ingested", "Kept with a warning: the image data is shorter than its header says."),
    ("scan/elsewhere.dcm", "duplicate", f"{SAME} {DUPLICATE_ELSEWHERE}"),
    ("notes.txt", "skipped", "Not a DICOM file."),
    ("scan/changed.dcm", "new_version", "changed instance with an existing SOPInstanceUID: stored as version 2"),
    ("scan/ok2.dcm", "ingested", ""),
]
LISTED = [("notes.txt", "problem"), ("scan/short.dcm", "warning"), ("scan/elsewhere.dcm", "warning"),
          ("scan/changed.dcm", "warning"), ("scan/again.dcm", "note"), ("scan/ok.dcm", "ok"), ("scan/ok2.dcm", "ok")]


@pytest.fixture
def uploader(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


@pytest.fixture
def reported(org_a, uploader):
    """A finished upload into a case whose report has a line of every kind, in ``READ``'s order."""
    case = CaseFactory(organization=org_a, created_by=uploader)
    study = StudyFactory(organization=org_a, case=case)
    upload = UploadFactory(organization=org_a, case=case, created_by=uploader, filename="export.zip",
                           state=UploadState.COMPLETE)
    job = IngestJobFactory(organization=org_a, upload=upload, case=case, created_by=uploader,
                           state="done_with_warnings")
    job.studies.add(study)
    IngestFileResult.objects.bulk_create(
        IngestFileResult(job=job, path=path, outcome=outcome, reason=reason,
                         study=None if outcome == "skipped" else study) for path, outcome, reason in READ)
    return upload, job, study


def _lines(html: str) -> list[tuple[str, str]]:
    return [(path, severity) for severity, path in re.findall(
        r'data-testid="report-line" class="outcome-\w+" data-severity="(\w+)"><td class="mono">([^<]+)</td>', html)]


def test_the_report_page_lists_problems_then_warnings_then_notes_then_the_rest(client_as, uploader, reported):
    _upload, job, _study = reported
    html = client_as(uploader).get(reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id}))
    assert _lines(html.content.decode()) == LISTED


def test_the_study_page_lists_its_lines_the_same_way(client_as, uploader, reported):
    _upload, job, study = reported
    client = client_as(uploader)
    assert _lines(client.get(study.get_absolute_url()).content.decode()) == LISTED
    whole = client.get(f"{study.get_absolute_url()}?report={job.public_id}").content.decode()
    assert _lines(whole) == LISTED


def test_the_status_json_lists_its_lines_as_the_report_page_does(client_as, uploader, reported):
    upload, _job, _study = reported
    status = client_as(uploader).get(f"/api/v1/uploads/{upload.public_id}/").json()["job"]
    assert [(f["path"], f["severity"]) for f in status["files"]] == LISTED
    assert status["files_count"] == len(READ)


def test_a_status_cut_at_status_files_says_how_many_lines_there_are(client_as, uploader, reported):
    """An upload of more files than the status carries lines for: it says how many there are (the
    upload page then says it lists only some, and leads to the report page, which lists them all)."""
    from apps.imaging.tus import STATUS_FILES
    from tests.pages import page_range

    upload, job, study = reported
    IngestFileResult.objects.bulk_create(IngestFileResult(job=job, path=f"bulk/{i:04}.dcm", outcome="ingested",
                                                          study=study) for i in range(STATUS_FILES))
    client = client_as(uploader)
    status = client.get(f"/api/v1/uploads/{upload.public_id}/").json()["job"]
    assert len(status["files"]) == STATUS_FILES and status["files_count"] == STATUS_FILES + len(READ)
    assert [(f["path"], f["severity"]) for f in status["files"][:5]] == LISTED[:5]  # what is cut is "ok"
    report = client.get(status["report_url"]).content.decode()
    assert _lines(report)[:5] == LISTED[:5]
    assert page_range(report) == f"Showing 1–500 of {STATUS_FILES + len(READ)}"
