"""De-identified exports end to end: a study ingested, exported from its page, the zip downloaded
(named ``..._DeID.zip``, MANIFEST sha256s matching, files clean), recorded once; who may and may
not; the outputs encrypted at rest; states for studies with nothing to export."""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.core.logs import ScrubbedError
from apps.deid.models import DeidExport, DeidExportFile, Outcome, State
from apps.deid.profile import Reason
from apps.deid.services import deid_export_package, deid_export_run, deid_export_start
from apps.organizations.models import Role
from apps.sharing import services as sharing
from bench.ingest.synthetic import write_ct_series
from tests.factories import CaseFactory, PatientFactory, member
from tests.imaging.test_e2e_upload import _scan
from tests.renditions.conftest import ingest_folder

UNEXPECTED = ("The export stopped on an unexpected error (recorded in the portal's log). Start it again; if it "
              "stops again, tell your administrator.")
UNEXPECTED_ES = ("La exportación se detuvo por un error inesperado (queda constancia en el registro del portal). "
                 "Iníciela de nuevo; si vuelve a detenerse, avise a su administrador.")

pytestmark = pytest.mark.django_db

PATIENT_NAME = "Quillfeather^Ottoline"
MRN = "MRN-DEID-5521"


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory) -> Path:
    """Four generated CT slices of one fictional patient, each referencing the one before, and a
    fifth slice marked Burned In Annotation = YES."""
    folder = tmp_path_factory.mktemp("deid_ct")
    paths = write_ct_series(folder, slices=4, rows=32, columns=32, patient_name=PATIENT_NAME)
    for i, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.PatientID = MRN
        ds.InstitutionName = "Quillfeather Royal Infirmary"
        ds.ReferringPhysicianName = "Referrer^Hortensia"
        ds.StudyID = "STUDY-DEID-77"
        ds.OtherPatientIDs = "OTHER-DEID-3141"
        ds.private_block(0x0011, "LIGHTBOX TEST", create=True).add_new(0x01, "LO", "PRIVATE-DEID-2718")
        if i:
            ref = pydicom.Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = pydicom.dcmread(paths[i - 1], stop_before_pixels=True).SOPInstanceUID
            ds.ReferencedImageSequence = pydicom.Sequence([ref])
        ds.save_as(path, enforce_file_format=True)
    burned = pydicom.dcmread(paths[0])
    burned.SOPInstanceUID = burned.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    burned.InstanceNumber = 5
    burned.BurnedInAnnotation = "YES"
    burned.save_as(folder / "IM00004.dcm", enforce_file_format=True)
    return folder


@pytest.fixture
def world(org_a, org_b, clinician_a, ct_folder):
    patient = PatientFactory(organization=org_a, mrn=MRN, name="Ottoline Quillfeather")
    case = CaseFactory(organization=org_a, patient=patient, created_by=clinician_a,
                       responsible_clinician=clinician_a)
    [study] = ingest_folder(ct_folder, org_a, case=case)
    return {"org": org_a, "case": case, "study": study, "clinician": clinician_a,
            "outsider": member(org_b, Role.CLINICIAN, email="clinician@beta.example"),
            "consultant": member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")}


def _originals(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]


def _start(client, study, django_capture_on_commit_callbacks, pseudonym="PSEUDO-CASE-1"):
    url = reverse("deid:study_exports", kwargs={"study_id": study.public_id})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"pseudonym": pseudonym})
    return response


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _manifest(zf: zipfile.ZipFile) -> tuple[str, dict[str, tuple[str, int]]]:
    [name] = [n for n in zf.namelist() if n.endswith("/MANIFEST.txt")]
    text = zf.read(name).decode()
    rows = {}
    for line in text.split("Files (sha256, bytes, label, path):\n", 1)[1].splitlines():
        if not line.strip():
            break
        sha, size, rest = line.split("  ", 2)
        rows[rest.rsplit("  ", 1)[1]] = (sha, int(size))
    return text, rows


def test_export_end_to_end(world, client_as, ct_folder, django_capture_on_commit_callbacks):
    study, client = world["study"], client_as(world["clinician"])
    page = client.get(study.get_absolute_url())
    assert b'data-testid="deid-exports"' in page.content  # the study page offers it
    before = AuditEvent.objects.filter(action=A.DEID_EXPORTED).count()
    response = _start(client, study, django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=study)
    assert response.status_code == 302 and response["Location"] == export.get_absolute_url()
    export.refresh_from_db()
    assert export.state == State.READY
    assert (export.files_total, export.files_exported, export.files_excluded) == (5, 4, 1)
    [excluded] = DeidExportFile.objects.filter(export=export, outcome=Outcome.EXCLUDED)
    assert excluded.reason == Reason.BURNED_IN and excluded.blob_id is None
    detail = client.get(export.get_absolute_url())
    assert detail.status_code == 200
    text = detail.content.decode()
    assert "De-identified (PS3.15 Annex E basic profile)" in text
    assert str(Reason.BURNED_IN.label) in text and 'data-testid="deid-download"' in text
    assert PATIENT_NAME not in text and MRN not in text

    download = client.get(reverse("deid:export_download", kwargs={"deidexport_id": export.public_id}))
    assert download.status_code == 200
    filename = download["Content-Disposition"].split('filename="')[1].rstrip('"')
    # the convention's date is the day the export was made, never the study's date (removed by the profile)
    made = timezone.localdate(export.finished_at).isoformat()
    assert filename == f"{made}_CT-Chest_V1_DeID.zip"
    assert study.study_date.isoformat() not in filename
    data = _body(download)
    assert len(data) == int(download["Content-Length"])
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    manifest, rows = _manifest(zf)
    assert "De-identified: yes" in manifest and "Burned-in annotation" in manifest
    assert len(rows) == 4
    originals = _originals(ct_folder)
    original_uids = {str(ds.StudyInstanceUID) for ds in originals} | {str(ds.SeriesInstanceUID) for ds in originals} \
        | {str(ds.SOPInstanceUID) for ds in originals}
    secrets = [PATIENT_NAME, MRN, "Quillfeather", "Hortensia", "STUDY-DEID-77", "OTHER-DEID-3141", "PRIVATE-DEID-2718",
               "19700101", "20260101"]
    outputs = []
    for path, (sha, size) in rows.items():
        content = zf.read(path)
        assert hashlib.sha256(content).hexdigest() == sha and len(content) == size
        for secret in secrets:
            assert secret.encode() not in content
        for uid in original_uids:
            assert uid.encode() not in content
        ds = pydicom.dcmread(io.BytesIO(content))
        assert ds.PatientName == "PSEUDO-CASE-1" and ds.PatientIdentityRemoved == "YES"
        outputs.append(ds)
    for secret in secrets:
        assert secret.encode() not in manifest.encode()
    # one study, one series, references mapped with the instances they name
    assert len({ds.StudyInstanceUID for ds in outputs}) == 1 and len({ds.SeriesInstanceUID for ds in outputs}) == 1
    sop_uids = {ds.SOPInstanceUID for ds in outputs}
    assert all(ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID in sop_uids
               for ds in outputs if "ReferencedImageSequence" in ds)
    # pixels unchanged
    by_number = {int(ds.InstanceNumber): ds for ds in originals}
    for ds in outputs:
        assert ds.PixelData == by_number[int(ds.InstanceNumber)].PixelData
    # recorded once, with figures only
    events = AuditEvent.objects.filter(action=A.DEID_EXPORTED)
    assert events.count() == before + 1
    event = events.latest("id")
    assert event.outcome == "allowed" and event.organization_id == world["org"].pk
    assert event.details["files_exported"] == 4 and event.details["files_excluded"] == 1
    assert event.details["bytes"] == export.bytes
    assert PATIENT_NAME not in str(event.details) and MRN not in str(event.details)
    assert AuditEvent.objects.filter(action=A.DOWNLOAD_COMPLETED, target_id=str(export.public_id)).count() == 1


def test_download_resumes_with_range(world, client_as, django_capture_on_commit_callbacks):
    client = client_as(world["clinician"])
    _start(client, world["study"], django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=world["study"])
    url = reverse("deid:export_download", kwargs={"deidexport_id": export.public_id})
    whole = client.get(url)
    data = _body(whole)
    part = client.get(url, HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=whole["ETag"])
    assert part.status_code == 206 and _body(part) == data[100:]
    # HEAD: the headers of a GET, no body, no transfer recorded
    transfers = AuditEvent.objects.filter(action__startswith="download.").count()
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head["Content-Length"] == str(len(data)) and head["ETag"] == whole["ETag"]
    assert AuditEvent.objects.filter(action__startswith="download.").count() == transfers


def test_outputs_are_encrypted_at_rest(world, client_as, django_capture_on_commit_callbacks, tmp_path):
    client = client_as(world["clinician"])
    _start(client, world["study"], django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=world["study"])
    package = deid_export_package(export)
    plain = b"".join(package.iter_range(0, package.size - 1))
    zf = zipfile.ZipFile(io.BytesIO(plain))
    rng = random.Random(5)
    needles = [b"PSEUDO-CASE-1"]
    for name in zf.namelist():
        if name.endswith(".dcm"):
            content = zf.read(name)
            needles += [content[132:164], content[300:332]]
            at = rng.randrange(1000, len(content) - 32)
            needles.append(content[at:at + 32])
    root = Path(settings.MEDIA_ROOT)
    assert _scan([root], needles) == []
    # the scan can find things: the needles are all in the plaintext zip (in this test's own
    # folder: a folder beside the storage root is shared with other runs on the machine)
    (tmp_path / "plain.zip").write_bytes(plain)
    assert len(_scan([tmp_path], needles)) == len(needles)


def test_a_run_killed_mid_way_resumes_and_records_once(world, monkeypatch):
    from apps.deid import services
    from apps.deid.profile import deidentify_file
    from apps.imaging.blobs import open_blob

    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-2")
    real, calls = services._one, []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "_one", dies_on_the_third)
    with pytest.raises(RuntimeError):
        deid_export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.state == State.RUNNING and DeidExportFile.objects.filter(export=export).count() == 2
    assert not AuditEvent.objects.filter(action=A.DEID_EXPORTED).exists()
    monkeypatch.setattr(services, "_one", real)
    assert deid_export_run(export_id=export.pk).state == State.READY  # the redelivered task
    assert deid_export_run(export_id=export.pk).state == State.READY  # and once more: nothing to do
    assert DeidExportFile.objects.filter(export=export).count() == 5
    events = AuditEvent.objects.filter(action=A.DEID_EXPORTED)
    assert events.count() == 1 and events.get().target_id == str(export.public_id)
    # the same input gives the same bytes within the export (a re-run makes what the first would)
    row = DeidExportFile.objects.filter(export=export, outcome=Outcome.EXPORTED).select_related("instance__blob")[0]
    with open_blob(row.instance.blob) as fh:
        again = deidentify_file(fh, pseudonym=export.pseudonym, key=bytes(export.uid_key))
    assert hashlib.sha256(again.data).hexdigest() == row.sha256


def test_a_file_whose_blob_is_deleted_before_its_row_takes_it_is_stored_again(world, monkeypatch):
    """A re-run makes the same bytes as the run before it, so put_blob may find a blob that a
    deletion (of unreferenced blobs) removes before the file's row points at it: the bytes are
    stored again, and no row points at a deleted blob."""
    from apps.imaging import blobs
    from apps.imaging.models import Blob

    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-6")
    real_put, deleted = blobs.put_blob, []

    def put(fileobj, **kwargs):
        blob = real_put(fileobj, **kwargs)
        if not deleted:  # a deletion that no row holds back commits here
            deleted.append(blob.pk)
            blobs.blob_files_delete(blobs.blobs_unreferenced_delete([blob.pk]))
        return blob

    monkeypatch.setattr(blobs, "put_blob", put)
    assert deid_export_run(export_id=export.pk).state == State.READY
    assert deleted and not Blob.objects.filter(pk=deleted[0]).exists()
    rows = DeidExportFile.objects.filter(export=export, outcome=Outcome.EXPORTED).select_related("blob")
    assert rows
    for row in rows:
        with blobs.open_blob(row.blob) as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == row.sha256 == row.blob.sha256


def test_outsider_gets_404_and_is_recorded(world, client_as, django_capture_on_commit_callbacks):
    _start(client_as(world["clinician"]), world["study"], django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=world["study"])
    outsider = client_as(world["outsider"])
    urls = [reverse("deid:study_exports", kwargs={"study_id": world["study"].public_id}),
            export.get_absolute_url(), reverse("deid:export_download", kwargs={"deidexport_id": export.public_id})]
    before = AuditEvent.objects.filter(action=A.ACCESS_DENIED).count()
    for url in urls:
        assert outsider.get(url).status_code == 404
    assert outsider.post(urls[0], {"pseudonym": "X"}).status_code == 404
    assert AuditEvent.objects.filter(action=A.ACCESS_DENIED).count() == before + 4
    assert DeidExport.objects.count() == 1


def test_grant_holders_are_refused_and_recorded(world, client_as):
    """A consultant with a full grant and a tumor-board guest hold the study through grants; an
    export is never theirs: 403 on the study's exports (they see the study), 404 on exports
    (staff rows), each refusal recorded."""
    case, study = world["case"], world["study"]
    sharing.grant_create(case=case, grantee=world["consultant"], by=world["clinician"],
                         permissions=["view", "download_preview", "download_original"],
                         expires_at=timezone.now() + timedelta(hours=4))
    export = deid_export_start(study=study, by=world["clinician"], pseudonym="PSEUDO-3")
    deid_export_run(export_id=export.pk)
    client = client_as(world["consultant"])
    before = AuditEvent.objects.filter(action=A.ACCESS_DENIED, outcome="denied").count()
    assert client.get(study.get_absolute_url()).status_code == 200  # the grant shows the study
    assert client.get(reverse("deid:study_exports", kwargs={"study_id": study.public_id})).status_code == 403
    assert client.post(reverse("deid:study_exports", kwargs={"study_id": study.public_id}),
                       {"pseudonym": "X"}).status_code == 403
    assert client.get(export.get_absolute_url()).status_code == 404
    assert client.get(reverse("deid:export_download", kwargs={"deidexport_id": export.public_id})).status_code == 404
    assert AuditEvent.objects.filter(action=A.ACCESS_DENIED, outcome="denied").count() == before + 4
    assert b'data-testid="deid-exports"' not in client.get(study.get_absolute_url()).content
    assert DeidExport.objects.count() == 1


def test_tumor_board_guest_is_refused(world, client_as):
    from apps.cases.services import board_create, board_start

    board = board_create(organization=world["org"], by=world["clinician"], host=world["clinician"], title="Board",
                         meeting_at=timezone.now() + timedelta(hours=1), review_days=7, cases=[world["case"]],
                         participants=[world["clinician"], world["consultant"]])
    board_start(board=board, by=world["clinician"])
    client = client_as(world["consultant"])
    before = AuditEvent.objects.filter(action=A.ACCESS_DENIED).count()
    assert client.get(reverse("deid:study_exports", kwargs={"study_id": world["study"].public_id})).status_code == 403
    assert AuditEvent.objects.filter(action=A.ACCESS_DENIED).count() == before + 1


def test_staff_without_the_action_are_refused(world, client_as):
    coordinator = member(world["org"], Role.COORDINATOR, email="coordinator@alpha.example")
    client = client_as(coordinator)
    assert client.get(reverse("deid:study_exports", kwargs={"study_id": world["study"].public_id})).status_code == 403
    assert b'data-testid="deid-exports"' not in client.get(world["study"].get_absolute_url()).content


def test_pseudonym_holding_the_patient_identifiers_is_refused(world, client_as, django_capture_on_commit_callbacks):
    client = client_as(world["clinician"])
    for bad in (MRN, "case-" + MRN.lower(), "Quillfeather", "", "x" * 65, "<script>"):
        response = _start(client, world["study"], django_capture_on_commit_callbacks, pseudonym=bad)
        assert response.status_code == 400
        assert b'data-testid="pseudonym-error"' in response.content
    assert not DeidExport.objects.exists()
    # the files' default character set takes no accented letter: the refusal says so (it said "letters")
    response = _start(client, world["study"], django_capture_on_commit_callbacks, pseudonym="Ñandú 1")
    assert response.status_code == 400 and "letters without accents (A-Z)" in response.content.decode()
    assert not DeidExport.objects.exists()
    page = client.get(reverse("deid:study_exports", kwargs={"study_id": world["study"].public_id}))
    assert page.status_code == 200 and str(world["case"].public_id).encode() in page.content  # the default


def test_study_with_nothing_eligible_is_ready_with_nothing_to_download(org_a, clinician_a, client_as, tmp_path,
                                                                       django_capture_on_commit_callbacks):
    paths = write_ct_series(tmp_path / "burned", slices=2, rows=16, columns=16)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.BurnedInAnnotation = "YES"
        ds.save_as(p, enforce_file_format=True)
    [study] = ingest_folder(tmp_path / "burned", org_a, case=CaseFactory(organization=org_a))
    client = client_as(clinician_a)
    _start(client, study, django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=study)
    assert (export.state, export.files_exported, export.files_excluded) == (State.READY, 0, 2)
    page = client.get(export.get_absolute_url())
    assert b'data-testid="deid-nothing"' in page.content and b'data-testid="deid-download"' not in page.content
    download = client.get(reverse("deid:export_download", kwargs={"deidexport_id": export.public_id}))
    assert download.status_code == 302 and download["Location"] == export.get_absolute_url()


def test_study_not_ready_fails_with_a_reason(org_a, clinician_a, client_as, django_capture_on_commit_callbacks):
    from tests.factories import StudyFactory

    study = StudyFactory(organization=org_a, state="processing")
    _start(client_as(clinician_a), study, django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=study)
    assert export.state == State.FAILED and "not ready" in export.reason
    page = client_as(clinician_a).get(export.get_absolute_url())
    assert page.status_code == 200 and b'data-testid="deid-reason"' in page.content
    assert not AuditEvent.objects.filter(action=A.DEID_EXPORTED).exists()


def test_a_failed_exports_reason_is_shown_in_the_readers_language(org_a, clinician_a, client_as,
                                                                  django_capture_on_commit_callbacks):
    """Started by an English reader, the task stores its reason in English; a Spanish reader
    sees it in Spanish, on the page and in its status JSON."""
    from tests.factories import StudyFactory

    study = StudyFactory(organization=org_a, state="processing")
    _start(client_as(clinician_a), study, django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=study)
    assert export.reason == "The study is not ready (still arriving, or its ingest failed)."
    spanish = "El estudio no está listo (todavía está llegando o su importación falló)."
    client = client_as(clinician_a)
    assert spanish in client.get(export.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert client.get(_status_url(export), HTTP_ACCEPT_LANGUAGE="es").json()["reason"] == spanish
    assert client.get(_status_url(export), HTTP_ACCEPT_LANGUAGE="en").json()["reason"] == export.reason


def test_an_export_the_task_gave_up_on_says_so_in_the_readers_language(world, client_as):
    from apps.deid.services import deid_export_fail

    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-8", enqueue=False)
    deid_export_fail(export_id=export.pk, error=MemoryError())
    export.refresh_from_db()
    assert (export.state, export.reason) == (State.FAILED, UNEXPECTED)
    status = client_as(world["clinician"]).get(_status_url(export), HTTP_ACCEPT_LANGUAGE="es").json()
    assert status["reason"] == UNEXPECTED_ES and "MemoryError" not in status["reason"]


def test_progress_page_refreshes_while_running(world, client_as):
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-4")
    page = client_as(world["clinician"]).get(export.get_absolute_url())
    assert page.status_code == 200
    text = page.content.decode()
    # no whole-page reload (it reset the reader's place and focus every 3 s, axe meta-refresh): the
    # page's script polls the export's status and updates the progress in place; without
    # JavaScript, a Refresh link
    assert 'http-equiv="refresh"' not in text and 'data-testid="deid-progress"' in text
    assert 'js/deid_progress.js' in text and "<script>" not in text  # served by the app (CSP: no inline)
    status_url = reverse("deid:export_status", kwargs={"deidexport_id": export.public_id})
    assert f'data-status-url="{status_url}"' in text
    assert 'data-testid="deid-refresh">Refresh</a>' in text and f'href="{export.get_absolute_url()}"' in text
    assert "refresh the page to see the progress" in text  # what the page says without JavaScript
    # the strings the script fills in come from the template, translated
    assert 'data-text-processed="{done} of {total} images processed"' in text
    download = client_as(world["clinician"]).get(reverse("deid:export_download",
                                                         kwargs={"deidexport_id": export.public_id}))
    assert download.status_code == 302


def test_finished_page_does_not_poll(world, client_as):
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-7", enqueue=False)
    deid_export_run(export_id=export.pk)
    text = client_as(world["clinician"]).get(export.get_absolute_url()).content.decode()
    assert 'data-testid="deid-download"' in text
    assert "deid_progress.js" not in text and "data-status-url" not in text and 'data-testid="deid-refresh"' not in text


def _status_url(export) -> str:
    return reverse("deid:export_status", kwargs={"deidexport_id": export.public_id})


def test_status_json_gives_the_owner_state_and_counts(world, client_as):
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-8", enqueue=False)
    DeidExport.objects.filter(pk=export.pk).update(state=State.RUNNING, files_total=5, files_done=2,
                                                   files_exported=1, files_excluded=1, bytes=2048)
    client = client_as(world["clinician"])
    response = client.get(_status_url(export))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "state": "running", "state_label": "De-identifying", "finished": False, "downloadable": False,
        "percent": 40, "files_total": 5, "files_done": 2, "files_exported": 1, "files_excluded": 1,
        "bytes": 2048, "bytes_label": "2.0\xa0KB", "reason": "",
    }

    deid_export_run(export_id=export.pk)
    status = client.get(_status_url(export)).json()
    assert (status["state"], status["finished"], status["downloadable"]) == ("ready", True, True)
    assert status["percent"] == 100
    assert (status["files_total"], status["files_exported"], status["files_excluded"]) == (5, 4, 1)
    body = client.get(_status_url(export)).content.decode()
    for secret in (PATIENT_NAME, MRN, "Quillfeather", "PSEUDO-8", str(world["study"].public_id),
                   str(world["case"].public_id), world["clinician"].email):
        assert secret not in body  # counts and state only: no patient, pseudonym, ids or people


def test_status_json_gives_the_reason_of_a_failed_export(world, client_as):
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-9", enqueue=False)
    DeidExport.objects.filter(pk=export.pk).update(state=State.FAILED, reason="The study is not ready.")
    status = client_as(world["clinician"]).get(_status_url(export)).json()
    assert (status["state"], status["finished"], status["reason"]) == ("failed", True, "The study is not ready.")


def test_status_json_is_refused_as_the_page_is(world, client_as):
    """Same answers as the export's page, each refusal recorded: 404 to another organization's
    member and to a grant holder (exports are staff rows), 403 to staff without the action."""
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-10", enqueue=False)
    sharing.grant_create(case=world["case"], grantee=world["consultant"], by=world["clinician"],
                         permissions=["view", "download_preview", "download_original"],
                         expires_at=timezone.now() + timedelta(hours=4))
    coordinator = member(world["org"], Role.COORDINATOR, email="coordinator@alpha.example")
    for actor, expected in ((world["outsider"], 404), (world["consultant"], 404), (coordinator, 403)):
        client = client_as(actor)
        assert client.get(export.get_absolute_url()).status_code == expected
        before = AuditEvent.objects.filter(action=A.ACCESS_DENIED).count()
        response = client.get(_status_url(export))
        assert response.status_code == expected, actor.email
        assert b"running" not in response.content and b"files_total" not in response.content
        assert AuditEvent.objects.filter(action=A.ACCESS_DENIED).count() == before + 1
    response = client_as(None).get(_status_url(export))  # signed out: to the sign-in page, as the page
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_unknown_ids_are_404(clinician_a, client_as):
    import uuid

    client = client_as(clinician_a)
    assert client.get(reverse("deid:export_detail", kwargs={"deidexport_id": uuid.uuid4()})).status_code == 404
    assert client.get(reverse("deid:study_exports", kwargs={"study_id": uuid.uuid4()})).status_code == 404
    assert client.get("/deid/exports/not-a-uuid/").status_code == 404


def test_a_task_that_gives_up_marks_the_export_failed(world, monkeypatch):
    """An unexpected error in the run: the export is failed with the error's kind (no message:
    messages may quote file content), so its page never waits for ever."""
    from apps.deid import tasks

    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-5", enqueue=False)

    def broken(*, export_id):
        raise ValueError("something about a file")

    monkeypatch.setattr(tasks, "deid_export_run", broken)
    # eager tasks propagate (test settings); a worker logs it: by its kind, not its message
    with pytest.raises(ScrubbedError, match=r"^ValueError$") as raised:
        tasks.deid_export_task.apply(args=[export.pk])
    assert raised.value.__suppress_context__ and raised.traceback[-1].name == "broken"  # where it failed
    export.refresh_from_db()
    assert export.state == State.FAILED and export.reason == UNEXPECTED  # no Python type shown
    assert "something" not in export.reason


def test_starting_an_export_is_recorded(world):
    """Who started it, on which study and case, in which organization (no pseudonym, no names)."""
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-9", enqueue=False)
    [event] = AuditEvent.objects.filter(action=A.DEID_EXPORT_STARTED)
    assert (event.actor_id, event.organization_id, event.outcome) == (world["clinician"].pk, world["org"].pk,
                                                                       "allowed")
    assert (event.case_ref, event.study_ref) == (world["case"].public_id, world["study"].public_id)
    assert event.details["export"] == str(export.public_id)
    assert "PSEUDO-9" not in str(event.details)
    deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-9", enqueue=False)
    assert AuditEvent.objects.filter(action=A.DEID_EXPORT_STARTED).count() == 1  # the second click starts nothing


def test_a_failed_export_is_recorded_with_its_reason_type_only(world, org_a, clinician_a):
    """The run's own refusals (study not ready) and a task that gave up are recorded once as
    failed, with the kind of failure: never the exception's message (it may quote a path or a
    DICOM value)."""
    from apps.deid.services import deid_export_fail
    from tests.factories import StudyFactory

    not_ready = StudyFactory(organization=org_a, case=world["case"], state="processing")
    export = deid_export_start(study=not_ready, by=clinician_a, pseudonym="PSEUDO-10", enqueue=False)
    deid_export_run(export_id=export.pk)
    deid_export_run(export_id=export.pk)  # a re-run of a finished export records nothing more
    given_up = deid_export_start(study=world["study"], by=clinician_a, pseudonym="PSEUDO-11", enqueue=False)
    deid_export_fail(export_id=given_up.pk, error=ValueError(f"bad value {MRN} in /var/storage/x"))
    deid_export_fail(export_id=given_up.pk, error=ValueError("again"))  # already failed: not twice
    events = list(AuditEvent.objects.filter(action=A.DEID_EXPORT_FAILED).order_by("seq"))
    assert [(e.outcome, e.actor_id, e.organization_id, e.study_ref, e.details) for e in events] == [
        ("failed", clinician_a.pk, org_a.pk, not_ready.public_id, {"export": str(export.public_id),
                                                                   "reason": "study_not_ready"}),
        ("failed", clinician_a.pk, org_a.pk, world["study"].public_id, {"export": str(given_up.public_id),
                                                                        "reason": "error", "error": "ValueError"}),
    ]
    assert not AuditEvent.objects.filter(action=A.DEID_EXPORTED).exists()


def test_a_second_click_while_running_makes_no_second_export(world):
    first = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-6", enqueue=False)
    again = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-6", enqueue=False)
    assert again.pk == first.pk and DeidExport.objects.count() == 1
    other = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-7", enqueue=False)
    assert other.pk != first.pk  # another pseudonym is another export


def test_a_second_click_after_a_quick_finish_returns_the_finished_export(world, client_as,
                                                                        django_capture_on_commit_callbacks):
    """A small study's export may be ready before the second click of a double click (or the start
    in another tab) arrives: that start returns the ready export, with a message saying so, and
    records nothing. Once ``JUST_FINISHED`` has passed, or when the export failed, starting again
    makes a new export (its own UID mapping: a deliberate re-export, or the retry)."""
    from apps.deid.services import JUST_FINISHED

    client = client_as(world["clinician"])
    _start(client, world["study"], django_capture_on_commit_callbacks)
    first = DeidExport.objects.get()
    assert first.state == State.READY  # tasks run eagerly here
    response = _start(client, world["study"], django_capture_on_commit_callbacks)
    assert response.status_code == 302 and response["Location"] == first.get_absolute_url()
    assert DeidExport.objects.count() == 1
    assert AuditEvent.objects.filter(action=A.DEID_EXPORT_STARTED).count() == 1
    page = client.get(first.get_absolute_url())
    assert "made moments ago with the same pseudonym" in page.content.decode()

    DeidExport.objects.filter(pk=first.pk).update(finished_at=timezone.now() - JUST_FINISHED - timedelta(seconds=1))
    later = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-CASE-1", enqueue=False)
    assert later.pk != first.pk
    DeidExport.objects.filter(pk=later.pk).update(state=State.FAILED, finished_at=timezone.now())
    retry = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-CASE-1", enqueue=False)
    assert retry.pk not in (first.pk, later.pk)


def test_deleting_the_study_removes_its_exports_blobs(world, client_as, django_capture_on_commit_callbacks,
                                                      admin_a):
    from django.core.files.storage import default_storage

    from apps.imaging.models import Blob
    from apps.imaging.services import study_delete

    _start(client_as(world["clinician"]), world["study"], django_capture_on_commit_callbacks)
    outputs = list(Blob.objects.filter(pk__in=DeidExportFile.objects.filter(export__study=world["study"])
                                       .values("blob_id")))
    assert outputs and all(default_storage.exists(b.storage_name) for b in outputs)

    study_delete(study=world["study"], by=admin_a)  # DELETE_STUDY: org admins and radiologists

    assert not [b.storage_name for b in outputs if default_storage.exists(b.storage_name)]
    assert not Blob.objects.filter(pk__in=[b.pk for b in outputs]).exists()


def test_an_export_the_queue_lost_does_not_block_starting_again(world):
    """A queued export no worker started within ``never_started_after()`` (the broker restarted without its
    messages) is not returned for ever by the double-click guard: it is marked failed, with why and
    recorded, and a new export is made; one queued a moment ago is still the one returned."""
    from apps.core.queue import never_started_after

    first = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-LOST", enqueue=False)
    again = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-LOST", enqueue=False)
    assert again.pk == first.pk
    lost_at = timezone.now() - never_started_after() - timedelta(seconds=1)
    DeidExport.objects.filter(pk=first.pk).update(created_at=lost_at)
    fresh = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-LOST", enqueue=False)
    assert fresh.pk != first.pk and fresh.state == State.QUEUED
    first.refresh_from_db()
    assert first.state == State.FAILED and "work queue lost it" in first.reason
    assert AuditEvent.objects.filter(action=A.DEID_EXPORT_FAILED, details__reason="never_started").count() == 1
    assert deid_export_run(export_id=first.pk).state == State.FAILED  # a late worker leaves it so


def test_a_membership_ended_meanwhile_stops_the_download(world, client_as, admin_a, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    """The zip is not sent on once the person's right to it ended (asked again while it streams)."""
    from apps.organizations.models import Membership
    from apps.organizations.services import membership_update
    from apps.renditions import views as rendition_views

    monkeypatch.setattr(rendition_views, "RECHECK_SECONDS", 0)
    client = client_as(world["clinician"])
    _start(client, world["study"], django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=world["study"])
    response = client.get(reverse("deid:export_download", kwargs={"deidexport_id": export.public_id}))
    pieces = iter(response.streaming_content)
    sent = len(next(pieces))
    membership_update(membership=Membership.objects.get(user=world["clinician"], organization=world["org"]),
                      by=admin_a, role=Role.CLINICIAN, is_active=False)
    sent += sum(len(p) for p in pieces)
    assert sent < int(response["Content-Length"])
    started, event = AuditEvent.objects.filter(action__startswith="download.").order_by("pk")
    assert started.action == "download.started"  # before the first byte
    assert (event.action, event.details["stopped"]) == ("download.incomplete", "access_ended")
    assert AuditEvent.objects.filter(action="access.denied", actor=world["clinician"]).exists()


def test_the_manifest_is_in_the_askers_language_as_a_studys_download(world, client_as,
                                                                       django_capture_on_commit_callbacks):
    """MANIFEST.txt of a de-identified export was English whoever asked, while a study's own
    download's follows the asker's language: it follows the same rule now, through the same
    manifest (its labels, the files' label and why an image was left out translated; the names,
    paths, sha256s and sizes as in English; the package's label header stays English)."""
    clinician = world["clinician"]
    client = client_as(clinician)
    _start(client, world["study"], django_capture_on_commit_callbacks)
    export = DeidExport.objects.get(study=world["study"])
    url = reverse("deid:export_download", kwargs={"deidexport_id": export.public_id})
    english = client.get(url)
    en_zip = zipfile.ZipFile(io.BytesIO(_body(english)))
    en_text, en_rows = _manifest(en_zip)
    assert "Contents: Study, De-identified (PS3.15 Annex E basic profile)" in en_text

    clinician.language = "es"
    clinician.save(update_fields=["language"])
    spanish = client.get(url)
    es_zip = zipfile.ZipFile(io.BytesIO(_body(spanish)))
    [name] = [n for n in es_zip.namelist() if n.endswith("/MANIFEST.txt")]
    es_text = es_zip.read(name).decode("utf-8")
    assert "Paquete de descarga de Lightbox" in es_text and "Lightbox download package" not in es_text
    assert "Contenido: Estudio, Desidentificado (perfil básico de PS3.15 anexo E)" in es_text
    assert "Anotación incrustada: el texto en los píxeles puede identificar al paciente." in es_text
    assert "Burned-in annotation" not in es_text and " imagen " in es_text
    # each file's row: the label in Spanish, its sha256, size and path as in English
    es_rows = {}
    for line in es_text.splitlines():
        parts = line.split("  ")
        if len(parts) == 4 and len(parts[0]) == 64:
            es_rows[parts[3]] = (parts[0], int(parts[1]))
            assert parts[2] == "Desidentificado (perfil básico de PS3.15 anexo E)"
    assert es_rows == en_rows and len(es_rows) == 4
    assert es_zip.namelist() == en_zip.namelist()
    assert spanish["Content-Disposition"] == english["Content-Disposition"]
    assert spanish["X-Lightbox-Label"] == english["X-Lightbox-Label"] == "De-identified (PS3.15 Annex E basic profile)"
    assert spanish["ETag"] != english["ETag"]  # a resume across languages gets the whole package
