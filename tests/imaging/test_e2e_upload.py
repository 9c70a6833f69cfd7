"""Must show 1 and 2, end to end over a real ASGI server (uvicorn) on loopback:

1. tuspy uploads a ~200 MB synthetic CT study (a zip of 400 512x512 slices); a proxy cuts the
   connection half way; the upload resumes from the server's offset, and the stored study is
   complete and identical (sha256 of every instance, recomputed from the decrypted blobs).
   Twice: ingest in the server (Celery eager, the embedded default), and, with REDIS_URL, in a
   Celery worker that also reads the zip's entries while the upload arrives (apps.imaging.follow).
2. No plaintext run of the study's bytes, nor the patient's name (the demo patient's), appears
   anywhere under the storage root or the staging folder.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import random
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread

from bench.ingest import harness
from bench.ingest.synthetic import write_ct_series
from tests.servers import server_log_on_failure, uvicorn_server

pytestmark = [pytest.mark.slow]

DEMO_PATIENT = "Demo^Alex"          # the demo patient (apps.cases.demo: "Alex Demo"), DICOM style
SLICES = 400                        # 400 x 512 x 512 x 2 bytes = 200 MiB of pixels


@pytest.fixture(scope="module")
def big_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big_ct")
    paths = write_ct_series(folder / "CT", slices=SLICES, patient_name=DEMO_PATIENT)
    archive = folder / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for p in paths:
            zf.write(p, f"CT/{p.name}")
    expected = {}
    for p in paths:
        uid = dcmread(p, stop_before_pixels=True).SOPInstanceUID
        expected[uid] = hashlib.sha256(p.read_bytes()).hexdigest()
    return archive, paths, expected


def _needles(paths: list[Path], rng: random.Random) -> list[bytes]:
    """32-byte runs of the plaintext: from each file's header (UIDs, names, dates) and pixels."""
    needles = [DEMO_PATIENT.encode(), b"Alex Demo", b"Synthetic CT chest"]
    for p in rng.sample(paths, 8):
        data = p.read_bytes()
        needles.append(data[132:164])                              # file meta
        needles.append(data[400:432])                              # dataset header
        at = rng.randrange(1000, len(data) - 32)
        needles.append(data[at:at + 32])                           # pixel data
    return needles


def _scan(roots: list[Path], needles: list[bytes]) -> list[tuple[str, bytes]]:
    found = []
    files = [f for root in roots if root.exists() for f in root.rglob("*") if f.is_file() and f.stat().st_size]
    assert files, "nothing stored: the scan would prove nothing"
    for f in files:
        with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found += [(str(f), n[:16]) for n in needles if data.find(n) != -1]
    return found


@pytest.fixture(params=["eager", "worker"])
def instance(request, tmp_path):
    """The instance, and with "worker" a Celery worker beside the server (Redis broker)."""
    if request.param == "eager":
        yield harness.prepare(tmp_path / "var", fast_db=True), False
        return
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs a Redis broker (REDIS_URL)")
    import redis

    url = harness.redis_db(os.environ["REDIS_URL"], 13)  # its own database: flushed here
    redis.Redis.from_url(url).flushdb()
    inst = harness.prepare(tmp_path / "var", fast_db=True, REDIS_URL=url)
    worker = harness.start_worker(inst)
    try:
        yield inst, True
    finally:
        harness.stop(worker)


def test_cut_connection_resumes_and_stores_identical_encrypted_study(instance, big_study, tmp_path):
    inst, with_worker = instance
    archive, paths, expected = big_study
    size = archive.stat().st_size
    assert size > 200 * 1024 * 1024
    log = tmp_path / "server.log"
    with server_log_on_failure(log), uvicorn_server(inst.env, timeout=60, log=log) as base:
        port = int(base.rsplit(":", 1)[1])
        proxy = harness.CuttingProxy(port, cut_after=size // 2)
        via_proxy = f"http://127.0.0.1:{proxy.port}"
        uploader = harness.make_uploader(via_proxy, inst, archive)
        with pytest.raises(Exception):  # noqa: B017 - the connection is cut: any client error
            uploader.upload()
        assert proxy.cut.is_set()
        assert uploader.url, "the upload was created before the cut"
        # the connection is back: the resume goes to the server itself, not through the test's
        # proxy (whose only part was the cut; under load its left-over threads of the cut
        # connections once closed a resumed request's connection: "Remote end closed connection")
        proxy.close()
        url = uploader.url.replace(via_proxy, base)
        assert url.startswith(base + "/api/v1/uploads/"), url
        offset = harness.tus_offset(url, inst)
        assert 0 < offset < size, "the server kept what arrived before the cut"
        # resume: a new client process would do the same, from the URL alone
        resumed = harness.make_uploader(base, inst, archive, url=url)
        assert resumed.offset == offset
        resumed.upload()
        status = harness.wait_for_ingest(url, inst)
    assert status["state"] == "complete" and status["offset"] == size
    job = status["job"]
    assert job["state"] == "done", job
    assert job["files_ingested"] == SLICES and job["files_skipped"] == 0
    if with_worker:  # most entries were read while the upload arrived, and used once confirmed
        assert job["files_prepared"] > SLICES // 2, job["files_prepared"]
    else:
        assert job["files_prepared"] == 0
    stored = harness.verify(inst)
    assert [s["state"] for s in stored["studies"]] == ["ready"]
    assert stored["studies"][0]["instances"] == SLICES
    # complete and identical: every instance's recorded and decrypted sha256 equals the original's
    assert {uid: v[0] for uid, v in stored["instances"].items()} == expected
    assert {uid: v[1] for uid, v in stored["instances"].items()} == expected
    assert stored["blobs"] == SLICES

    # must show 2: no plaintext anywhere under the storage root (nor in the staging folder)
    stored_bytes = sum(f.stat().st_size for f in inst.storage_root.rglob("*") if f.is_file())
    assert stored_bytes >= sum(p.stat().st_size for p in paths)
    needles = _needles(paths, random.Random(3))
    assert _scan([inst.storage_root, inst.upload_dir], needles) == []
    # the scan can find things: the same needles are all in the plaintext archive
    assert len(_scan([archive.parent], needles)) >= len(needles)
