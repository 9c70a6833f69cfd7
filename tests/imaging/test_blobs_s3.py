"""The blob store on S3-compatible object storage (production), against moto's in-process S3:
django-storages' backend writes the objects, Lightbox reads them back with ranged GETs."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from django.core.files.storage import default_storage

from apps.imaging import blobs
from apps.imaging.models import Blob, Instance, Study
from apps.imaging.services import ingest_job_create, ingest_job_run, study_delete

pytestmark = pytest.mark.django_db

BUCKET = "lightbox-studies"


@pytest.fixture
def s3(settings, monkeypatch):
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        settings.STORAGES = {**settings.STORAGES, "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": BUCKET, "region_name": "us-east-1", "access_key": "testing",
                        "secret_key": "testing", "default_acl": "private", "querystring_auth": True,
                        "file_overwrite": False}}}
        assert type(default_storage._wrapped).__name__ != "DirectFileSystemStorage"
        yield client


def _objects(client) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


@pytest.mark.parametrize("size", [0, 1, blobs.CHUNK_SIZE, 2 * blobs.CHUNK_SIZE + 7])
def test_round_trip_and_ranged_reads(s3, size):
    data = os.urandom(size)
    blob = blobs.put_blob(io.BytesIO(data))
    assert blobs.open_blob(blob).read() == data
    stored = _objects(s3)
    assert list(stored) == [blob.storage_name]
    assert len(stored[blob.storage_name]) == size + max(1, -(-size // blobs.CHUNK_SIZE)) * blobs.TAG
    if size > 64:
        assert data[:64] not in stored[blob.storage_name]
        fh = blobs.open_blob(blob)  # a seek into the second chunk opens there (a ranged GET)
        fh.seek(blobs.CHUNK_SIZE + 3)
        assert fh.read(100) == data[blobs.CHUNK_SIZE + 3:blobs.CHUNK_SIZE + 103]
        # as a download streams it (a Range request, a package's segment)
        start = blobs.CHUNK_SIZE - 5
        assert b"".join(blobs.iter_blob(blob, start, 20)) == data[start:start + 20]
        assert b"".join(blobs.iter_blob(blob, 7)) == data[7:]


def test_two_writers_of_the_same_bytes_never_share_an_object(s3, django_capture_on_commit_callbacks):
    """Object storage checks a name, then writes: each write has its own object, the row that
    wins keeps its own, and the loser deletes only its own."""
    data = os.urandom(5000)
    sha = hashlib.sha256(data).hexdigest()
    first, second = blobs.blob_write(data, sha), blobs.blob_write(data, sha)
    assert first.storage_name != second.storage_name
    with django_capture_on_commit_callbacks(execute=True):
        kept = blobs.blobs_record([first])[0]
    assert blobs.blobs_record([second])[0].pk == kept.pk
    assert list(_objects(s3)) == [kept.storage_name]
    assert blobs.open_blob(kept).read() == data


def test_a_study_ingested_into_s3_and_deleted(s3, org_a, admin_a, small_ct):
    job = ingest_job_run(job_id=ingest_job_create(organization=org_a, source_path=str(small_ct), enqueue=False).pk)
    assert job.files_ingested == 6
    for inst in Instance.objects.select_related("blob"):
        assert hashlib.sha256(blobs.open_blob(inst.blob).read()).hexdigest() == inst.sha256
    stored = _objects(s3)
    keys = set(Blob.objects.values_list("storage_name", flat=True))
    assert keys <= set(stored)
    for path in small_ct.iterdir():
        pixels = path.read_bytes()[-4096:]
        assert not any(pixels in body for body in stored.values())
    assert not any(b"Synthetic^Testpatient" in body for body in stored.values())
    study_delete(study=Study.objects.get(), by=admin_a)
    assert not set(_objects(s3)) & keys


def test_the_readiness_check_writes_and_deletes_an_object(s3):
    from apps.core.health import check_storage

    assert check_storage() is None
    assert _objects(s3) == {}


def test_the_sweep_deletes_objects_no_row_names(s3):
    """On object storage each write has its own name, so a killed writer's object is found only
    by listing: the daily sweep does (here with a cutoff after every write)."""
    from datetime import timedelta

    data = os.urandom(3000)
    orphan = blobs.blob_write(data, hashlib.sha256(data).hexdigest()).storage_name  # never recorded
    kept = blobs.put_blob(io.BytesIO(os.urandom(3000)))
    assert set(_objects(s3)) == {orphan, kept.storage_name}
    assert blobs.blobs_orphans_delete(older_than=timedelta(hours=-1)) == 1
    assert list(_objects(s3)) == [kept.storage_name]


def test_the_sweep_keeps_recorded_blobs_under_a_bucket_prefix(s3, settings):
    """With a key prefix (django-storages' ``location``), stored keys and recorded names differ
    by that prefix: the sweep must compare names, or it would take every blob for an orphan."""
    from datetime import timedelta

    settings.STORAGES = {**settings.STORAGES, "default": {
        **settings.STORAGES["default"],
        "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "location": "lightbox/prod"}}}
    data = os.urandom(3000)
    orphan = blobs.blob_write(data, hashlib.sha256(data).hexdigest()).storage_name
    kept = blobs.put_blob(io.BytesIO(os.urandom(3000)))
    assert set(_objects(s3)) == {f"lightbox/prod/{orphan}", f"lightbox/prod/{kept.storage_name}"}
    assert blobs.blobs_orphans_delete(older_than=timedelta(hours=-1)) == 1
    assert list(_objects(s3)) == [f"lightbox/prod/{kept.storage_name}"]
    assert blobs.open_blob(kept).read()
