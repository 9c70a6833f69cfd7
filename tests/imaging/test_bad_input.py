"""Must show 4: a bad-input corpus gives a per-file reason for each file, no 500, and the good
files of the same upload are ingested."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from django.test import Client
from pydicom.data import get_testdata_file

from apps.imaging.models import FileOutcome, IngestJob, Instance, Upload
from apps.organizations.models import Role
from tests.factories import member
from tests.imaging.zips import zip_bytes

pytestmark = pytest.mark.django_db

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
#: pydicom's deliberately odd files and what must become of them
ODD = {
    "no_meta.dcm": "not a DICOM file",               # no preamble / file meta
    "ExplVR_BigEndNoMeta.dcm": "not a DICOM file",
    "meta_missing_tsyntax.dcm": "missing SOPInstanceUID",
    "UN_sequence.dcm": "missing",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated",
    "zipMR.gz": "not a DICOM file",
}


def _upload(client: Client, data: bytes, filename: str):
    meta = "filename " + base64.b64encode(filename.encode()).decode()
    r = client.generic("POST", "/api/v1/uploads/", data, content_type="application/offset+octet-stream",
                       HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=meta, **TUS)
    assert r.status_code == 201, r.content
    return IngestJob.objects.get(upload=Upload.objects.get(public_id=r["Location"].rstrip("/").rsplit("/", 1)[1]))


@pytest.fixture
def client(org_a):
    c = Client()
    c.force_login(member(org_a, Role.RADIOLOGIST))
    return c


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    return zip_bytes(entries, compression)


def test_bad_corpus_in_one_zip(client, small_ct, django_capture_on_commit_callbacks):
    good = {f"good/{p.name}": p.read_bytes() for p in sorted(small_ct.iterdir())}
    ct = good["good/IM00000.dcm"]
    bad = {
        "bad/truncated_pixels.dcm": ct[: len(ct) - 1000],
        "bad/truncated_header.dcm": ct[:300],
        "bad/report.dcm": b"This is a text report renamed .dcm, not DICOM.\n" * 20,
        "bad/empty.dcm": b"",
        "../../etc/evil.dcm": ct,
        "/abs/evil.dcm": ct,
        "bad/bomb.dcm": b"\0" * (20 * 1024 * 1024),
        "bad/inner.zip": _zip({"a.dcm": ct}),
    }
    for name in ODD:
        bad[f"odd/{name}"] = open(get_testdata_file(name, download=False), "rb").read()
    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(client, _zip({**good, **bad}), "corpus.zip")
    job.refresh_from_db()
    lines = {f.path: f for f in job.files.all()}
    assert set(lines) == set(good) | set(bad)
    for path in good:
        assert lines[path].outcome == FileOutcome.INGESTED, (path, lines[path].reason)
    for path in bad:
        assert lines[path].outcome == FileOutcome.SKIPPED and lines[path].reason, path
    assert "truncated" in lines["bad/truncated_pixels.dcm"].reason
    assert "truncated" in lines["bad/truncated_header.dcm"].reason or "not a DICOM" in lines[
        "bad/truncated_header.dcm"].reason
    assert "not a DICOM file" in lines["bad/report.dcm"].reason
    assert "unsafe path" in lines["../../etc/evil.dcm"].reason
    assert "unsafe path" in lines["/abs/evil.dcm"].reason
    assert "zip bomb" in lines["bad/bomb.dcm"].reason
    assert "nested archive" in lines["bad/inner.zip"].reason
    for name, reason in ODD.items():
        assert reason in lines[f"odd/{name}"].reason, name
    assert Instance.objects.count() == len(good)
    assert job.studies.get().num_instances == len(good)
    # the uploader sees it: the status JSON carries every line with its reason
    status = client.get(f"/api/v1/uploads/{job.upload.public_id}/").json()
    assert len(status["job"]["files"]) == len(lines)


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("empty.zip", _zip({}), "the zip holds no files"),
    ("bomb.zip", _zip({"zeros.dcm": b"\0" * (30 * 1024 * 1024)}), "zip bomb"),
    ("damaged.zip", _zip({"a.dcm": b"x" * 5000}, zipfile.ZIP_STORED)[:-30], "not a DICOM file"),
    ("notes.txt", b"hello", "not a DICOM file"),
])
def test_bad_whole_uploads_are_reported_not_500(client, name, data, reason, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(client, data, name)
    job.refresh_from_db()
    line = job.files.get()
    assert line.outcome == FileOutcome.SKIPPED and reason in line.reason
    assert not Instance.objects.exists()


def test_lying_zip_header_cannot_inflate(tmp_path):
    """An entry whose header understates its size is cut at the declared size."""
    from apps.imaging import sources

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", b"\0" * 100_000)
    raw = bytearray(buf.getvalue())
    # patch the declared uncompressed size (local header offset 22, central directory +24)
    cd = raw.rfind(b"PK\x01\x02")
    raw[22:26] = (1000).to_bytes(4, "little")
    raw[cd + 24:cd + 28] = (1000).to_bytes(4, "little")
    entries = list(sources.zip_entries(io.BytesIO(bytes(raw))))
    assert len(entries) == 1
    with pytest.raises(Exception) as excinfo:
        with entries[0].open() as fh:
            fh.read()
    assert "zip bomb" in str(excinfo.value) or "Bad" in type(excinfo.value).__name__


def _dicomdir_object() -> bytes:
    """A small synthetic object of the DICOMDIR's SOP class (a fictional patient)."""
    from pydicom.uid import generate_uid

    from apps.imaging.dicom import DICOMDIR_SOP_CLASS
    from bench.ingest.synthetic import ct_slice

    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=4, columns=4, seed=b"\1" * 32)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DICOMDIR_SOP_CLASS
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_each_files_reason_is_shown_in_the_readers_language(client, small_ct, django_capture_on_commit_callbacks):
    """The ingest runs in a task and stores its reasons in English (manage.py, logs, the JSON's
    ``reason``); the uploader reads them in their own language, on the upload page (the JSON's
    ``reason_label``) and on the study page."""
    good = {f"good/{p.name}": p.read_bytes() for p in sorted(small_ct.iterdir())}
    bad = {"bad/report.dcm": b"This is a text report renamed .dcm, not DICOM.\n" * 20,
           "../../etc/evil.dcm": good["good/IM00000.dcm"],
           "bad/header.dcm": open(get_testdata_file("meta_missing_tsyntax.dcm", download=False), "rb").read(),
           "bad/index.dcm": _dicomdir_object()}  # a DICOMDIR by its content, not by its name
    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(client, _zip({**good, **bad}), "corpus.zip")
    job.refresh_from_db()
    study = job.studies.get()
    english = {f.path: f.reason for f in job.files.all()}
    assert english["bad/report.dcm"] == "not a DICOM file (no DICM preamble or file meta information)"
    assert english["../../etc/evil.dcm"] == "unsafe path in zip: '..' escapes the archive"

    status = client.get(f"/api/v1/uploads/{job.upload.public_id}/", HTTP_ACCEPT_LANGUAGE="es").json()
    shown = {f["path"]: (f["reason"], f["reason_label"]) for f in status["job"]["files"]}
    assert shown["bad/report.dcm"] == (english["bad/report.dcm"],
                                       "no es un archivo DICOM (sin preámbulo DICM ni metainformación de archivo)")
    assert shown["../../etc/evil.dcm"][1] == "ruta insegura en el zip: '..' sale del archivo"
    assert shown["bad/header.dcm"] == ("missing SOPInstanceUID", "falta SOPInstanceUID")  # with its argument
    assert shown["bad/index.dcm"] == ("DICOMDIR index: its files are ingested",
                                      "índice DICOMDIR: se incorporan sus archivos")

    page = client.get(study.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "ruta insegura en el zip: &#x27;..&#x27; sale del archivo" in page
    assert "unsafe path" not in page and "not a DICOM file" not in page
    english_page = client.get(study.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "unsafe path in zip: &#x27;..&#x27; escapes the archive" in english_page


def test_entry_paths_longer_than_a_report_line_holds(client, small_ct, django_capture_on_commit_callbacks):
    """A zip entry's name may be 65,535 bytes long; a report line keeps 1,000 characters. Long
    paths are shortened around a hash of the whole (two long paths stay two lines, a retried run
    finds its lines), and the good files are ingested. Before, the whole ingest failed (PostgreSQL:
    value too long)."""
    from apps.imaging.services import _report_path

    good = {f"good/{p.name}": p.read_bytes() for p in sorted(small_ct.iterdir())}
    middle_a, middle_b = "a/" * 600, "b/" * 600
    long_a, long_b = f"start/{middle_a}report.dcm", f"start/{middle_b}report.dcm"
    entries = {**good, long_a: b"not DICOM " * 50, long_b: b"not DICOM either " * 50}
    with django_capture_on_commit_callbacks(execute=True):
        job = _upload(client, _zip(entries), "long-names.zip")
    job.refresh_from_db()
    lines = {f.path: f for f in job.files.all()}
    assert len(lines) == len(entries) and all(len(p) <= 1000 for p in lines)
    long_lines = sorted(p for p in lines if p.startswith("start/"))
    assert len(long_lines) == 2 and all(p.endswith("/report.dcm") and "…[" in p for p in long_lines)
    assert all(lines[p].outcome == FileOutcome.SKIPPED and "not a DICOM file" in lines[p].reason for p in long_lines)
    assert Instance.objects.count() == len(good) and job.studies.get().num_instances == len(good)
    # a retried run (a worker lost mid-ingest) skips the lines already written: the same path
    # always gives the same line
    assert _report_path(long_a) in lines and _report_path(long_b) in lines
    assert _report_path("short/path.dcm") == "short/path.dcm"
