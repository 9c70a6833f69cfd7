"""What an upload's uploader reads of it after the fact: an upload that imported nothing says so
(not "Done with warnings") and keeps its per-file reasons a link away after a reload, in the
reader's language; the study page counts its own study's files, each number with its plural; a
study is named by its description and its number of images; the demo's uploads are named by their
folder, not by a server path."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from django.urls import reverse

from apps.imaging.models import NOTHING_IMPORTED, FileOutcome, IngestFileResult, JobState
from apps.organizations.models import Role
from tests.factories import IngestJobFactory, StudyFactory, member
from tests.imaging.test_bad_input import _upload

pytestmark = pytest.mark.django_db

UPLOAD_PAGE = "/studies/upload/"


@pytest.fixture
def uploader(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


@pytest.fixture
def client(client_as, uploader):
    return client_as(uploader)


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sent(client, data: bytes, filename: str, capture):
    with capture(execute=True):
        job = _upload(client, data, filename)
    job.refresh_from_db()
    return job


def _recent(html: str) -> str:
    return html.split('data-testid="recent-uploads"', 1)[1].split("</ul>", 1)[0]


def _nothing(small_ct) -> dict[str, bytes]:
    ct = sorted(small_ct.iterdir())[0].read_bytes()
    return {
        "notes.txt": b"A text report, not DICOM.\n" * 20,
        "empty.dcm": b"",
        "damaged.zip": b"PK\x03\x04" + b"\x00" * 200,
        "nested.zip": _zip({"inner.zip": _zip({"IM1.dcm": ct})}),
        "truncated.dcm": ct[:300],
    }


@pytest.mark.parametrize("kind", ["notes.txt", "empty.dcm", "damaged.zip", "nested.zip", "truncated.dcm"])
def test_an_upload_that_imports_nothing_says_so_and_its_reasons_stay_a_link_away(
        client, small_ct, kind, django_capture_on_commit_callbacks):
    """It said "Done with warnings", and after a reload "Your recent uploads" gave no reason
    and no link: an upload with no study has no study page to carry its report."""
    job = _sent(client, _nothing(small_ct)[kind], kind, django_capture_on_commit_callbacks)
    assert job.state in (JobState.DONE, JobState.DONE_WITH_WARNINGS)
    assert (job.imported_nothing, job.outcome, job.outcome_label) == (True, NOTHING_IMPORTED, "Nothing imported")
    report_url = reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id})

    status = client.get(f"/api/v1/uploads/{job.upload.public_id}/").json()["job"]
    assert (status["state"], status["outcome"], status["state_label"]) == (
        job.state, NOTHING_IMPORTED, "Nothing imported")
    assert status["report_url"] == report_url

    recent = _recent(client.get(UPLOAD_PAGE).content.decode())
    assert 'data-outcome="nothing_imported">Nothing imported</span>' in recent
    assert "Done with warnings" not in recent
    assert f'href="{report_url}" data-testid="job-report"' in recent

    page = client.get(report_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="job-outcome">Nothing imported<' in html and 'data-testid="nothing-imported"' in html
    reasons = {f.path: f.reason_shown for f in job.files.all()}
    assert reasons and all(reasons.values())
    assert html.count('data-testid="report-line"') == len(reasons)
    for reason in reasons.values():
        assert reason.replace("'", "&#x27;") in html


def test_the_reasons_of_an_upload_that_imported_nothing_are_in_the_readers_language(
        client, django_capture_on_commit_callbacks):
    job = _sent(client, b"A text report, not DICOM.\n" * 20, "notes.dcm", django_capture_on_commit_callbacks)
    url = reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id})
    spanish = client.get(url, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "no es un archivo DICOM (sin preámbulo DICM ni metainformación de archivo)" in spanish
    assert "not a DICOM file" not in spanish
    english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "not a DICOM file (no DICM preamble or file meta information)" in english


def test_an_upload_that_imported_images_keeps_its_state_and_names_its_study(
        client, small_ct, django_capture_on_commit_callbacks):
    """The upload page's per-file report said "Study (Ready, 1)": no description, a bare number."""
    files = sorted(small_ct.iterdir())
    job = _sent(client, _zip({"notes.txt": b"not DICOM\n", **{f"CT/{p.name}": p.read_bytes() for p in files}}),
                "ct.zip", django_capture_on_commit_callbacks)
    assert (job.state, job.imported_nothing, job.outcome) == (JobState.DONE_WITH_WARNINGS, False,
                                                              JobState.DONE_WITH_WARNINGS)
    status = client.get(f"/api/v1/uploads/{job.upload.public_id}/").json()["job"]
    assert (status["outcome"], status["state_label"]) == ("done_with_warnings", "Done with warnings")
    [study] = status["studies"]
    assert (study["description"], study["instances_label"]) == ("Synthetic CT chest", f"{len(files)} images")
    assert 'data-outcome="done_with_warnings">Done with warnings</span>' in _recent(
        client.get(UPLOAD_PAGE).content.decode())
    html = client.get(status["report_url"]).content.decode()
    assert "Synthetic CT chest</a>" in html and f"· Ready · {len(files)} images" in html
    assert f"{len(files)} ingested, 0 duplicates, 1 skipped" in html

    one = _sent(client, files[0].read_bytes(), "again.dcm", django_capture_on_commit_callbacks)
    assert one.outcome == JobState.DONE  # a duplicate: its images are in the portal already
    status = client.get(f"/api/v1/uploads/{one.upload.public_id}/").json()["job"]
    assert status["studies"][0]["instances_label"] == f"{len(files)} images"
    html = client.get(status["report_url"]).content.decode()
    assert "0 ingested, 1 duplicate, 0 skipped" in html


def test_a_study_of_one_image_says_1_image(client, small_ct, django_capture_on_commit_callbacks):
    job = _sent(client, sorted(small_ct.iterdir())[0].read_bytes(), "one.dcm", django_capture_on_commit_callbacks)
    status = client.get(f"/api/v1/uploads/{job.upload.public_id}/").json()["job"]
    assert status["studies"][0]["instances_label"] == "1 image"
    # uploaded with no case: the upload page's live row shows the badge the reloaded one does
    assert status["studies"][0]["in_case"] is False
    assert "· 1 image" in client.get(status["report_url"]).content.decode()


@pytest.mark.parametrize(("who", "status"), [
    ("uploader", 200), ("colleague", 200), ("coordinator", 200),  # who may upload there, as the study page
    ("org_admin", 403),            # staff who may not upload: the study page shows them no report either
    ("consultant", 404), ("other_org", 404),
])
def test_the_upload_report_is_for_those_who_may_upload_into_its_organization(
        client_as, org_a, org_b, uploader, who, status):
    job = IngestJobFactory(organization=org_a, created_by=uploader, state=JobState.DONE)
    IngestFileResult.objects.create(job=job, path="notes.txt", outcome=FileOutcome.SKIPPED, reason="not DICOM")
    user = {"uploader": lambda: uploader,
            "colleague": lambda: member(org_a, Role.CLINICIAN),
            "coordinator": lambda: member(org_a, Role.COORDINATOR),
            "org_admin": lambda: member(org_a, Role.ORG_ADMIN),
            "consultant": lambda: member(org_a, Role.EXTERNAL_CONSULTANT),
            "other_org": lambda: member(org_b, Role.RADIOLOGIST)}[who]()
    r = client_as(user).get(reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id}))
    assert r.status_code == status
    assert ("notes.txt" in r.content.decode()) == (status == 200)


def test_the_upload_report_comes_a_page_at_a_time_problems_first(client, org_a, uploader, monkeypatch):
    from apps.imaging import selectors
    from tests.pages import page_range

    monkeypatch.setattr(selectors, "REPORT_LINES", 3)
    job = IngestJobFactory(organization=org_a, created_by=uploader, state=JobState.DONE_WITH_WARNINGS)
    study = StudyFactory(organization=org_a)
    IngestFileResult.objects.bulk_create(
        [IngestFileResult(job=job, path=f"scan/{i}.dcm", outcome="ingested", study=study) for i in range(5)]
        + [IngestFileResult(job=job, path="notes.txt", outcome="skipped", reason="not DICOM")])
    url = reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id})
    first = client.get(url).content.decode()
    assert re.findall(r'<td class="mono">([^<]+)</td>', first) == ["notes.txt", "scan/0.dcm", "scan/1.dcm"]
    assert page_range(first) == "Showing 1–3 of 6" and 'href="?lines=2#report-heading" rel="next"' in first


def _report_of_two_studies(org, by):
    """One upload that went into two studies (one 1 ingested + 1 duplicate, the other 3 + 2) and
    skipped 2 files; its counts are the whole upload's."""
    study, other = StudyFactory(organization=org), StudyFactory(organization=org)
    job = IngestJobFactory(organization=org, created_by=by, state=JobState.DONE_WITH_WARNINGS,
                           files_total=9, files_ingested=4, files_duplicate=3, files_skipped=2)
    job.studies.add(study, other)
    lines = [("a/1.dcm", "ingested", study), ("a/2.dcm", "duplicate", study),
             *[(f"b/{i}.dcm", "ingested", other) for i in range(3)],
             *[(f"b/d{i}.dcm", "duplicate", other) for i in range(2)],
             ("notes.txt", "skipped", None), ("empty.dcm", "skipped", None)]
    IngestFileResult.objects.bulk_create([IngestFileResult(job=job, path=p, outcome=o, study=s,
                                                           reason="not DICOM" if o == "skipped" else "")
                                          for p, o, s in lines])
    return job, study


@pytest.mark.parametrize("whole", [False, True])
def test_the_study_pages_counts_are_its_own_studys_with_their_plurals(client, org_a, uploader, whole):
    """It said "4 ingested, 3 duplicates" (the whole upload's) above a table of this study's
    two files, and "1 duplicates"."""
    job, study = _report_of_two_studies(org_a, uploader)
    url = study.get_absolute_url() + (f"?report={job.public_id}" if whole else "")
    html = client.get(url).content.decode()
    counts = re.search(r'data-testid="report-counts">(.*?)</p>', html, re.S).group(1)
    assert " ".join(counts.split()) == "In this study: 1 ingested, 1 duplicate. In the whole upload: 2 skipped."
    assert html.count('data-testid="report-line"') == 4  # its 2 files and the 2 skipped
    assert "1 duplicates" not in html and "4 ingested" not in html


def test_the_study_pages_report_heading_reads_importacion_in_spanish(client, org_a, uploader):
    """The Spanish catalogue said "Ingesta del…" and "ingeridos" (swallowed) where its table
    says "Incorporado"."""
    _job, study = _report_of_two_studies(org_a, uploader)
    html = client.get(study.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Importación del " in html
    assert "Ingesta" not in html and "ngerid" not in html


def test_an_upload_from_a_server_folder_is_named_by_the_folders_name_not_its_path(client, org_a, uploader):
    IngestJobFactory(organization=org_a, created_by=uploader, source_path="/srv/imports/batch-7/")
    recent = _recent(client.get(UPLOAD_PAGE).content.decode())
    assert 'data-testid="job-source">batch-7</span>' in recent and "/srv/imports" not in recent


def test_the_demos_uploads_are_named_demo_data_not_a_temporary_folder(client):
    from apps.accounts.models import User
    from apps.core.demo import seed

    seed()
    client.force_login(User.objects.get(email="clinician@northwind.example"))
    recent = _recent(client.get(UPLOAD_PAGE).content.decode())
    assert 'data-testid="job-source">Demo data</span>' in recent
    assert "/tmp" not in recent and "lightbox-demo-" not in recent


def test_a_grantee_of_the_jobs_case_from_elsewhere_is_told_nothing_of_the_job(client_as, org_a, org_b, uploader):
    """Someone of another organization holding a share of the job's case sees the job's case and
    so, to ``visible_to``, the job: refused with 404 (as anyone it is hidden from), not 403, which
    said the job exists."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.sharing.services import grant_create
    from tests.factories import CaseFactory

    case = CaseFactory(organization=org_a)
    job = IngestJobFactory(organization=org_a, created_by=uploader, state=JobState.DONE, case=case)
    reader = member(org_b, Role.RADIOLOGIST)
    grant_create(case=case, grantee=reader, permissions=["view"], expires_at=timezone.now() + timedelta(days=1),
                 by=uploader)
    r = client_as(reader).get(reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id}))
    assert r.status_code == 404
