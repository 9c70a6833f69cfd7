"""Download packages: naming (must show 3), resumable streaming with Range (must show 2),
manifest, staged delivery through the policy, and the audit of every transfer."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile

import pydicom
import pytest
from django.test import AsyncClient
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.renditions.packages import package_name, study_package
from apps.sharing import services as sharing
from tests.factories import StudyFactory, member
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db


def _url(study, kind="original"):
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _manifest_rows(data: bytes) -> tuple[zipfile.ZipFile, dict[str, tuple[str, int, str]], str]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None  # every CRC-32 checks
    [manifest_name] = [n for n in zf.namelist() if n.endswith("/MANIFEST.txt")]
    text = zf.read(manifest_name).decode()
    rows = {}
    for line in text.split("Files (sha256, bytes, label, path):\n", 1)[1].splitlines():
        if not line.strip():
            break
        sha, size, rest = line.split("  ", 2)
        label, path = rest.rsplit("  ", 1)
        rows[path] = (sha, int(size), label)
    return zf, rows, text


# ----------------------------------------------------------------------------- 3. naming

def test_name_convention_for_several_modalities_and_body_regions(org_a):
    ct = StudyFactory.build(organization=org_a, study_date=dt.date(2026, 4, 12), modalities="CT",
                            body_part_examined="CHEST", version=1)
    assert package_name([ct]) == "2026-04-12_CT-Chest_V1"
    assert package_name([ct], deidentified=True) == "2026-04-12_CT-Chest_V1_DeID"
    petct = StudyFactory.build(organization=org_a, study_date=dt.date(2026, 4, 12), modalities="PT,CT",
                               body_part_examined="CHEST", version=2)
    # several values: "+"-joined in alphabetical order, whatever order they came in
    assert package_name([petct], body_parts={"abdomen", "HEAD_NECK"}) == "2026-04-12_CT+PT-Abdomen+Chest+HeadNeck_V2"
    mr = StudyFactory.build(organization=org_a, study_date=dt.date(2026, 3, 1), modalities="MR",
                            body_part_examined="", version=1)
    # several studies (a case): earliest date, union, highest version
    assert package_name([petct, mr]) == "2026-03-01_CT+MR+PT-Chest_V2"
    bare = StudyFactory.build(organization=org_a, study_date=None, modalities="", body_part_examined="")
    assert package_name([bare]) == "undated_OT_V1"


def test_a_study_without_body_part_names_no_region(org_a):
    """Without Body Part Examined the name said "Unspecified", as if it were a region: the region
    is left out now, and never replaced by the study's description (free text, which may name the
    patient and which the de-identification profile removes)."""
    study = StudyFactory.build(organization=org_a, study_date=dt.date(2026, 4, 12), modalities="CT",
                               body_part_examined="", study_description="Head Jane Doe", version=1)
    assert package_name([study]) == "2026-04-12_CT_V1"
    assert package_name([study], deidentified=True) == "2026-04-12_CT_V1_DeID"
    # a value with no letter or digit names no region either; any other series' does
    assert package_name([study], body_parts={"--"}) == "2026-04-12_CT_V1"
    assert package_name([study], body_parts={"head"}) == "2026-04-12_CT-Head_V1"


def test_version_in_the_name_increases_with_a_new_study_version(org_a, tmp_path):
    from bench.ingest.synthetic import write_ct_series

    first = tmp_path / "v1"
    paths = write_ct_series(first, slices=2, rows=16, columns=16)
    [v1] = ingest_folder(first, org_a)
    changed = pydicom.dcmread(paths[0])
    changed.PixelData = bytes(len(changed.PixelData))  # same SOP Instance UID, other bytes
    (tmp_path / "v2").mkdir()
    changed.save_as(tmp_path / "v2" / "changed.dcm")
    [v2] = ingest_folder(tmp_path / "v2", org_a)
    assert v2.version == 2 and v2.previous_id == v1.pk
    assert study_package(v1, "original").name == "2026-01-01_CT-Chest_V1_Original"
    assert study_package(v2, "original").name == "2026-01-01_CT-Chest_V2_Original"


def _manifest_of(package) -> str:
    data = b"".join(package.iter_range(0, package.size - 1))
    return zipfile.ZipFile(io.BytesIO(data)).read(f"{package.name}/MANIFEST.txt").decode()


def _ct_saying_identity_removed(folder, *, clean: bool, pseudonym: str = ""):
    """Two synthetic CT files (fictional patient) that say Patient Identity Removed = YES: taken
    through the de-identification profile (``clean``), or with the fictional name, ID and birth
    date kept."""
    from apps.deid.profile import deidentify_file
    from bench.ingest.synthetic import write_ct_series

    for p in write_ct_series(folder, slices=2, rows=16, columns=16):
        if clean:
            p.write_bytes(deidentify_file(p.read_bytes(), pseudonym=pseudonym, key=b"test-key" * 4).data)
        else:
            ds = pydicom.dcmread(p)
            ds.PatientIdentityRemoved = "YES"
            ds.save_as(p)
    return folder


def test_deid_suffix_when_every_file_is_de_identified(org_a, tmp_path):
    [study] = ingest_folder(_ct_saying_identity_removed(tmp_path / "deid", clean=True), org_a)
    package = study_package(study, "preview")
    assert package.name.endswith("_V1_DeID_Preview")  # the lossy rendition's suffix last
    assert "De-identified: yes" in _manifest_of(package)


@pytest.mark.parametrize("pseudonym", [None, "CASE-0001"])
def test_no_deid_suffix_when_a_file_says_identity_removed_but_still_names_its_patient(org_a, tmp_path, pseudonym):
    """Patient Identity Removed = YES is a claim: a file that makes it but keeps the patient's
    name (or a pseudonym there, which cannot be told from a name) is not labelled de-identified,
    neither in the package's name nor in its manifest."""
    folder = _ct_saying_identity_removed(tmp_path / "claim", clean=pseudonym is not None, pseudonym=pseudonym or "")
    assert all(str(pydicom.dcmread(p).PatientIdentityRemoved) == "YES" and str(pydicom.dcmread(p).PatientName)
               for p in folder.iterdir())
    [study] = ingest_folder(folder, org_a)
    for kind in ("preview", "original"):
        package = study_package(study, kind)
        assert "_DeID" not in package.name
        assert "De-identified: no" in _manifest_of(package)


# ----------------------------------------------------------------------------- 2. resume

def test_half_then_range_resume_gives_the_full_package(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    full = client.get(_url(ct_study))
    assert full.status_code == 200 and full["Accept-Ranges"] == "bytes"
    total = int(full["Content-Length"])
    whole = _body(full)
    assert len(whole) == total
    etag = full["ETag"]

    half = client.get(_url(ct_study), HTTP_RANGE=f"bytes=0-{total // 2 - 1}")
    assert half.status_code == 206
    first = _body(half)
    rest = client.get(_url(ct_study), HTTP_RANGE=f"bytes={len(first)}-", HTTP_IF_RANGE=etag)
    assert rest.status_code == 206
    assert rest["Content-Range"] == f"bytes {len(first)}-{total - 1}/{total}"
    assert int(rest["Content-Length"]) == total - len(first)
    joined = first + _body(rest)
    assert hashlib.sha256(joined).hexdigest() == hashlib.sha256(whole).hexdigest()

    zf, rows, text = _manifest_rows(joined)
    names = [n for n in zf.namelist() if not n.endswith("MANIFEST.txt")]
    assert len(names) == 6 and set(rows) == set(names)
    for name in names:
        data = zf.read(name)
        assert rows[name][0] == hashlib.sha256(data).hexdigest() and rows[name][1] == len(data)
        assert rows[name][2] == "Diagnostic original"
    assert "Label: Diagnostic original" in text
    assert all(n.startswith("2026-01-01_CT-Chest_V1_Original/S001_CT/IM0000") for n in names)
    # the originals, byte for byte
    sops = {pydicom.dcmread(io.BytesIO(zf.read(n))).SOPInstanceUID for n in names}
    assert sops == set(ct_study.instances.values_list("sop_instance_uid", flat=True))


def test_range_edge_cases(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    full = client.get(_url(ct_study, "preview"))
    total, whole, etag = int(full["Content-Length"]), _body(full), full["ETag"]
    tail = client.get(_url(ct_study, "preview"), HTTP_RANGE="bytes=-100")
    assert tail.status_code == 206 and _body(tail) == whole[-100:]
    # from a byte after the first, staff (no transfer kept) name the version they resume (If-Range,
    # as a browser does); without it, the package whole (tests/renditions/test_resume_splice.py)
    middle = client.get(_url(ct_study, "preview"), HTTP_RANGE="bytes=1000-1999", HTTP_IF_RANGE=etag)
    assert middle.status_code == 206 and _body(middle) == whole[1000:2000]
    assert client.get(_url(ct_study, "preview"), HTTP_RANGE=f"bytes={total}-",
                      HTTP_IF_RANGE=etag).status_code == 416
    # If-Range that no longer matches: the whole package again, not a mismatched slice
    stale = client.get(_url(ct_study, "preview"), HTTP_RANGE="bytes=10-", HTTP_IF_RANGE='"stale"')
    assert stale.status_code == 200 and _body(stale) == whole
    _zf, rows, _text = _manifest_rows(whole)
    assert all(label == "Preview - lossy" for _, _, label in rows.values())
    assert all(n.endswith(".jpg") for n in rows)


LONG = "9" * 5000  # more digits than int() reads (4,300)


@pytest.mark.parametrize(("header", "expected"), [
    (f"bytes={LONG}-", False),                     # a start past any package: unsatisfiable
    (f"bytes=0-{LONG}", (0, 999)),                 # an end past it: to the last byte
    (f"bytes=-{LONG}", (0, 999)),                  # a suffix longer than the package: all of it
    (f"bytes={'0' * 5000}10-{'0' * 5000}19", (10, 19)),  # leading zeros are still the number
    ("bytes=99999999999999999999-", False),
    ("bytes=\u0663-\u0665", None),                 # digits other than 0-9: not a form we take
])
def test_parse_range_takes_a_position_of_any_length(header, expected):
    from apps.renditions.views import parse_range

    assert parse_range(header, 1000) == expected


def test_a_range_written_with_thousands_of_digits_is_answered_not_a_server_error(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    etag = client.head(_url(ct_study, "preview"))["ETag"]
    past = client.get(_url(ct_study, "preview"), HTTP_RANGE=f"bytes={LONG}-", HTTP_IF_RANGE=etag)
    assert past.status_code == 416
    whole = client.get(_url(ct_study, "preview"), HTTP_RANGE=f"bytes=0-{LONG}")
    assert whole.status_code == 206 and whole["Content-Range"].startswith("bytes 0-")
    _body(whole)


def test_lossless_package_and_its_labels(ct_study, clinician_a, client_as):
    data = _body(client_as(clinician_a).get(_url(ct_study, "lossless")))
    zf, rows, text = _manifest_rows(data)
    assert "Label: Diagnostic - lossless compressed" in text
    for name in rows:
        ds = pydicom.dcmread(io.BytesIO(zf.read(name)))
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLSLossless


def test_every_transfer_is_audited_with_bytes_and_completion(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    unread = client.get(_url(ct_study))  # not read: the generator never finished
    total = int(unread["Content-Length"])
    _body(client.get(_url(ct_study), HTTP_RANGE="bytes=0-99"))
    _body(client.get(_url(ct_study), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=unread["ETag"]))
    events = list(AuditEvent.objects.filter(action__in=("download.completed", "download.incomplete")).order_by("pk"))
    done = [(e.action, e.details["bytes_sent"], e.details["completed"]) for e in events]
    assert ("download.incomplete", 100, False) in done
    assert ("download.completed", total - 100, True) in done
    # each response's transfer was recorded before its first byte, the unread one's too
    started = AuditEvent.objects.filter(action="download.started").order_by("pk")
    assert [(e.details["range_start"], e.details["range_end"]) for e in started] == [
        (0, total - 1), (0, 99), (100, total - 1)]


def test_a_transfers_event_holds_ids_and_figures_not_the_packages_name(ct_study, clinician_a, client_as):
    """The package's name (``2026-01-01_CT-Chest_V1_Education``: the study's date and description)
    went into every download.* event's details, and from there into the CSV and FHIR exports; the
    details hold ids and figures only: what was sent is the rendition and the scope."""
    client = client_as(clinician_a)
    case_url = reverse("renditions:case_download", kwargs={"case_id": ct_study.case.public_id})
    for url in (_url(ct_study, "education"), case_url + "?rendition=preview"):
        _body(client.get(url))
    events = list(AuditEvent.objects.filter(action="download.completed").order_by("pk"))
    assert [(e.details["scope"], e.details["rendition"]) for e in events] == [("study", "education"),
                                                                            ("case", "preview")]
    assert [(e.study_ref, e.case_ref) for e in events] == [(ct_study.public_id, ct_study.case.public_id),
                                                           (None, ct_study.case.public_id)]
    for event in events:
        assert "package" not in event.details
        text = " ".join(v for v in event.details.values() if isinstance(v, str))
        assert "2026" not in text and "Chest" not in text, text


def test_async_stream_under_asgi(ct_study, clinician_a):
    """Under ASGI the body is an async iterator (Django would collect a sync one whole)."""
    client = AsyncClient()
    client.force_login(clinician_a)

    async def fetch():
        etag = (await client.head(_url(ct_study, "preview")))["ETag"]
        response = await client.get(_url(ct_study, "preview"), headers={"Range": "bytes=5-", "If-Range": etag})
        assert response.is_async
        return response, b"".join([part async for part in response.streaming_content])

    from asgiref.sync import async_to_sync

    response, body = async_to_sync(fetch)()
    assert response.status_code == 206 and len(body) == int(response["Content-Length"])


# ----------------------------------------------------------------------------- staged delivery

def test_preview_first_original_needs_its_own_permission(ct_study, clinician_a, client_as, org_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    from django.utils import timezone

    grant = sharing.grant_create(case=ct_study.case, grantee=consultant, by=clinician_a,
                                 permissions=["view", "download_preview"], renditions=["preview"],
                                 expires_at=timezone.now() + dt.timedelta(hours=4))
    client = client_as(consultant)
    assert client.get(_url(ct_study, "preview")).status_code == 200
    for kind in ("original", "lossless"):
        assert client.get(_url(ct_study, kind)).status_code == 403
    page = client_as(clinician_a).get(ct_study.get_absolute_url()).content.decode()
    assert 'data-testid="download-original"' in page and 'data-testid="rendition-badge"' in page
    # the original permission added: now the diagnostic renditions too
    grant.permissions = [*grant.permissions, "download_original"]
    grant.renditions = ["preview", "original"]
    grant.save()
    assert client.get(_url(ct_study, "lossless")).status_code == 200


def test_other_tenant_gets_404(ct_study, admin_b, client_as):
    assert client_as(admin_b).get(_url(ct_study, "preview")).status_code == 404


def test_case_package_has_one_folder_per_study(ct_study, clinician_a, client_as):
    url = reverse("renditions:case_download", kwargs={"case_id": ct_study.case.public_id}) + "?rendition=preview"
    response = client_as(clinician_a).get(url)
    _zf, rows, _text = _manifest_rows(_body(response))
    case = f"Case-{ct_study.case.public_id.hex[:8]}_2026-01-01_CT-Chest_V1_Preview"
    assert response["Content-Disposition"] == f'attachment; filename="{case}.zip"'
    # each study's folder carries the lossy suffix too (it was the original's folder name)
    assert all(n.startswith(f"{case}/2026-01-01_CT-Chest_V1_Preview/S001_CT/PV") for n in rows)
    assert len(rows) == 6


def test_async_stream_cut_midway_is_recorded_incomplete(ct_study, monkeypatch):
    """The worker reads the next batch ahead while one is sent; a transfer abandoned with a batch
    still being read closes cleanly and reports what was sent."""
    import asyncio

    from asgiref.sync import async_to_sync

    from apps.renditions import views

    monkeypatch.setattr(views, "BATCH", 1)  # one piece per batch: many batches, one always ahead
    asked = []
    batch = views._batch
    monkeypatch.setattr(views, "_batch", lambda pieces: asked.append(1) or batch(pieces))
    package = study_package(ct_study, "original")
    reports = []

    async def cut_after_two():
        stream = views._async_stream(package, 0, package.size - 1, lambda sent, complete, stopped: reports.append(
            (sent, complete)), lambda: True)
        got = len(await anext(stream))
        for _ in range(200):  # the second batch is asked for before the first is sent on
            if len(asked) == 2:
                break
            await asyncio.sleep(0.005)
        assert len(asked) == 2
        got += len(await anext(stream))
        await stream.aclose()
        await asyncio.gather(*views._FINISHING)
        return got

    got = async_to_sync(cut_after_two)()
    assert 0 < got < package.size
    assert reports == [(got, False)]

    async def whole():
        stream = views._async_stream(package, 0, package.size - 1, lambda sent, complete, stopped: reports.append(
            (sent, complete)), lambda: True)
        return b"".join([part async for part in stream])

    assert len(async_to_sync(whole)()) == package.size
    assert reports[-1] == (package.size, True)


def test_stored_blob_files_are_read_ahead(ct_study, monkeypatch):
    """While one blob is decrypted and sent, the kernel is asked to read the next ones (file
    storage): each blob file of the range is announced once, none before the range."""
    import os

    from django.core.files.storage import default_storage

    from apps.renditions import packages

    announced = []

    def fadvise(fd, offset, length, advice):
        assert advice == os.POSIX_FADV_WILLNEED
        announced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(packages.os, "posix_fadvise", fadvise)
    package = study_package(ct_study, "original")
    blobs = [s for s in package.segments if s.blob is not None]
    paths = [default_storage.path(s.blob.storage_name) for s in blobs]
    data = b"".join(package.iter_range(0, package.size - 1))
    assert len(data) == package.size
    assert announced == paths
    announced.clear()
    start = blobs[3].offset
    b"".join(package.iter_range(start, package.size - 1))
    assert announced == paths[3:]
