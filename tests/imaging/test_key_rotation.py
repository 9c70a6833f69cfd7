"""Master keys and ``manage.py rotate_keys``: every data key still needed is re-wrapped (blobs, and
uploads whose staging file is kept: arriving, or finished with an ingest job queued, running or
failed for ``--resume``), so that the old master key can be removed; a run that leaves any on
another key fails and says so; a run stopped half way loses nothing and can be run again."""

from __future__ import annotations

import base64
import io
import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.imaging import blobs, keys, uploads
from apps.imaging.management.commands import rotate_keys
from apps.imaging.models import Blob, IngestJob, JobState, Upload, UploadState

pytestmark = pytest.mark.django_db

OLD = base64.b64encode(os.urandom(32)).decode()
NEW = base64.b64encode(os.urandom(32)).decode()


def _staged(org, user, data: bytes = b"staged bytes of an upload") -> Upload:
    """An upload holding ``data`` in its staging file, its data key wrapped with the current key."""
    upload = uploads.upload_create(organization=org, user=user, length=len(data), filename="x.zip")
    writer = uploads.upload_writer(upload)
    writer.write(data)
    writer.sync()
    writer.close()
    Upload.objects.filter(pk=upload.pk).update(offset=len(data))
    upload.refresh_from_db()
    return upload


def _with_job(upload: Upload, state: str, *, discarded: bool = False) -> Upload:
    Upload.objects.filter(pk=upload.pk).update(state=UploadState.COMPLETE, completed_at=timezone.now())
    IngestJob.objects.create(organization_id=upload.organization_id, upload=upload, state=state,
                             upload_discarded_at=timezone.now() if discarded else None)
    upload.refresh_from_db()
    return upload


def _rotate(settings, *, stderr=None) -> str:
    """Rotate to ``new`` with ``old`` still configured; the command's output."""
    settings.LIGHTBOX_MASTER_KEYS = f"new:{NEW},old:{OLD}"
    out = io.StringIO()
    call_command("rotate_keys", stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize("job_state", [None, JobState.QUEUED, JobState.RUNNING, JobState.FAILED])
def test_every_upload_whose_staging_file_is_kept_is_rewrapped(org_a, clinician_a, settings, job_state):
    """Still arriving (no job), or finished with its job queued, running or failed (its file kept
    for ``manage.py ingest --resume``): once rotated, its staged bytes read with the new key alone.
    Only arriving uploads were re-wrapped: the others could never be read once the old key went."""
    settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD}"
    data = os.urandom(5000)
    upload = _staged(org_a, clinician_a, data)
    if job_state is not None:
        _with_job(upload, job_state)
    before = uploads.staging.staging_path(upload.staging_name).read_bytes()

    out = _rotate(settings)

    assert "re-wrapped 0 blob key(s) and 1 upload key(s) with new" in out
    assert "the other master keys can be removed" in out
    upload.refresh_from_db()
    assert upload.key_id == "new"
    settings.LIGHTBOX_MASTER_KEYS = f"new:{NEW}"  # the old key removed, as the command says it can be
    assert uploads.upload_open(upload).read() == data
    assert uploads.staging.staging_path(upload.staging_name).read_bytes() == before  # no byte re-encrypted


@pytest.mark.parametrize("ended", ["terminated", "expired", "done", "done_with_warnings", "discarded"])
def test_uploads_whose_staging_file_is_gone_are_left_alone(org_a, clinician_a, settings, ended):
    """Cancelled or expired, ingested, or failed with the file discarded: no file to read, so no
    key is needed, and one on a master key long removed neither stops the rotation nor fails it."""
    settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD}"
    upload = _staged(org_a, clinician_a)
    if ended in ("terminated", "expired"):
        Upload.objects.filter(pk=upload.pk).update(state=ended)
    elif ended == "discarded":
        _with_job(upload, JobState.FAILED, discarded=True)
    else:
        _with_job(upload, ended)
    Upload.objects.filter(pk=upload.pk).update(key_id="retired", wrapped_key=b"\0" * 60)

    settings.LIGHTBOX_MASTER_KEYS = f"new:{NEW},old:{OLD}"
    out = io.StringIO()
    call_command("rotate_keys", stdout=out, stderr=io.StringIO())

    assert "and 0 upload key(s)" in out.getvalue()
    assert Upload.objects.get(pk=upload.pk).key_id == "retired"
    assert not uploads.uploads_staged().filter(pk=upload.pk).exists()


def test_a_row_written_meanwhile_with_the_old_key_fails_the_rotation(org_a, clinician_a, settings, monkeypatch):
    """A process still on the old configuration stores a blob while the rotation runs: the
    command re-wraps what it listed, then counts what is left on another key, fails naming the
    key id (exit status 1), and the old key must stay. Once every process is on the new key,
    running it again finishes."""
    settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD}"
    _staged(org_a, clinician_a)
    blobs.put_blob(io.BytesIO(b"first blob"))
    real = rotate_keys.upload_rewrap
    late = []

    def rewrap_while_another_process_writes(upload, *, key_id):
        if not late:  # the other process's configuration: the old key first
            saved = settings.LIGHTBOX_MASTER_KEYS
            settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD}"
            late.append(blobs.put_blob(io.BytesIO(b"a blob stored meanwhile")))
            settings.LIGHTBOX_MASTER_KEYS = saved
        return real(upload, key_id=key_id)

    monkeypatch.setattr(rotate_keys, "upload_rewrap", rewrap_while_another_process_writes)
    with pytest.raises(CommandError) as raised:
        _rotate(settings)

    message = str(raised.value)
    assert "1 blob key(s) and 0 upload key(s) are still wrapped with another master key than new (old)" in message
    assert "keep those keys in LIGHTBOX_MASTER_KEYS" in message
    assert OLD not in message and NEW not in message
    assert Blob.objects.get(pk=late[0].pk).key_id == "old"

    monkeypatch.setattr(rotate_keys, "upload_rewrap", real)
    assert "re-wrapped 1 blob key(s) and 0 upload key(s) with new" in _rotate(settings)
    assert set(Blob.objects.values_list("key_id", flat=True)) == {"new"}


def test_a_key_that_does_not_unwrap_is_named_and_the_others_are_rewrapped(org_a, clinician_a, settings):
    """An upload on a master key no longer configured (removed too early): it is named (never a
    key), the other rows are re-wrapped all the same, and the command fails."""
    settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD}"
    lost = _staged(org_a, clinician_a)
    Upload.objects.filter(pk=lost.pk).update(key_id="removed")
    kept = _staged(org_a, clinician_a)
    blob = blobs.put_blob(io.BytesIO(b"a blob"))
    stderr = io.StringIO()

    with pytest.raises(CommandError) as raised:
        _rotate(settings, stderr=stderr)

    assert f"upload {lost.public_id}: its data key was not re-wrapped: master key 'removed' is not in " \
           "LIGHTBOX_MASTER_KEYS" in stderr.getvalue()
    assert "0 blob key(s) and 1 upload key(s) are still wrapped with another master key than new (removed)" \
        in str(raised.value)
    assert Upload.objects.get(pk=kept.pk).key_id == "new"
    assert Blob.objects.get(pk=blob.pk).key_id == "new"


def test_a_rotation_stopped_half_way_loses_nothing_and_runs_again(org_a, clinician_a, settings, monkeypatch):
    """Each row is re-wrapped by its own committed UPDATE: stopped after the first upload, the
    rows are on the new key or the old one, every one readable while both are configured; the
    next run re-wraps the rest only, and then the old key can go."""
    settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD}"
    data = [os.urandom(100 + i) for i in range(3)]
    staged = [_with_job(_staged(org_a, clinician_a, d), JobState.QUEUED) for d in data]
    real = rotate_keys.upload_rewrap
    calls = []

    def stopped_after_one(upload, *, key_id):
        if calls:
            raise KeyboardInterrupt
        calls.append(upload.pk)
        return real(upload, key_id=key_id)

    monkeypatch.setattr(rotate_keys, "upload_rewrap", stopped_after_one)
    with pytest.raises(KeyboardInterrupt):
        _rotate(settings)

    assert sorted(Upload.objects.values_list("key_id", flat=True)) == ["new", "old", "old"]
    for upload, d in zip(staged, data, strict=True):
        upload.refresh_from_db()
        assert uploads.upload_open(upload).read() == d

    monkeypatch.setattr(rotate_keys, "upload_rewrap", real)
    assert "re-wrapped 0 blob key(s) and 2 upload key(s) with new" in _rotate(settings)
    settings.LIGHTBOX_MASTER_KEYS = f"new:{NEW}"
    for upload, d in zip(staged, data, strict=True):
        upload.refresh_from_db()
        assert uploads.upload_open(upload).read() == d


def test_a_row_rewrapped_meanwhile_is_not_rewrapped_again(org_a, clinician_a, settings):
    """The UPDATE is conditional on the key the row was read with: a row another run re-wrapped
    since it was listed is left as that run wrote it (and not counted twice)."""
    settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD},new:{NEW}"
    upload = _staged(org_a, clinician_a)
    settings.LIGHTBOX_MASTER_KEYS = f"new:{NEW},old:{OLD}"
    listed = Upload.objects.get(pk=upload.pk)
    assert uploads.upload_rewrap(upload, key_id="new") is True
    wrapped = bytes(Upload.objects.get(pk=upload.pk).wrapped_key)
    assert uploads.upload_rewrap(listed, key_id="new") is False  # listed on "old", now on "new"
    assert bytes(Upload.objects.get(pk=upload.pk).wrapped_key) == wrapped


def test_a_master_key_id_given_twice_is_refused_naming_the_id_only():
    """``k1:A,k1:B`` used B for k1 without a word (A's data keys no longer opened)."""
    a, b = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    with pytest.raises(ImproperlyConfigured) as raised:
        keys.parse_master_keys(f"k1:{a},k2:{b},k1:{b}")
    assert str(raised.value) == "LIGHTBOX_MASTER_KEYS: key id 'k1' is given more than once"
    assert a not in str(raised.value) and b not in str(raised.value)
    assert list(keys.parse_master_keys(f"k1:{a},k2:{b}")) == ["k1", "k2"]


def test_a_staging_folder_that_cannot_be_read_does_not_stop_the_rotation(org_a, clinician_a, settings, monkeypatch):
    """The leftovers sweep runs first; run as a user that the staging folder (0700) is not open to,
    its PermissionError aborted the rotation before any key was re-wrapped. It is reported on
    stderr, and the keys are re-wrapped all the same (the rows say which uploads are staged)."""
    settings.LIGHTBOX_MASTER_KEYS = f"old:{OLD}"
    upload = _staged(org_a, clinician_a)

    def unreadable():
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(uploads.staging, "staging_dir", unreadable)  # what a stat of the folder says then
    err = io.StringIO()
    out = _rotate(settings, stderr=err)

    assert "leftovers were not swept (PermissionError)" in err.getvalue()
    assert "re-wrapped 0 blob key(s) and 1 upload key(s) with new" in out
    assert Upload.objects.get(pk=upload.pk).key_id == "new"
