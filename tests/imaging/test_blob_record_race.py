"""A writer that finds the same bytes recorded by another writer meanwhile takes the other's row
locked, as a blob found before the batch is (``blobs_lock``), so a deletion of unreferenced
blobs waits for its commit and sees the rows pointing at it; if the other's row is gone by then,
its own row is recorded after all."""

from __future__ import annotations

import hashlib
import os

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.imaging import blobs
from apps.imaging.models import Blob

pytestmark = pytest.mark.django_db


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_other_writers_row_is_taken_locked():
    data = os.urandom(5000)
    kept = blobs.blobs_record([blobs.blob_write(data, _sha(data))])[0]
    late = blobs.blob_write(data, _sha(data))  # written before that row was committed
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert blobs._record(late).pk == kept.pk
    taken = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and "imaging_blob" in q["sql"]]
    # SQLite has no row locks (and no FOR UPDATE): its one writer at a time stands in for them
    assert taken and all(("FOR UPDATE" in sql) == connection.features.has_select_for_update for sql in taken)
    assert blobs.open_blob(kept).read() == data


def test_the_other_writers_row_deleted_meanwhile_leaves_ours_recorded(monkeypatch):
    """Our insert was refused for the other's row, which a deletion took before we read it."""
    data = os.urandom(5000)
    ours = blobs.blob_write(data, _sha(data))
    save = Blob.save
    refused = []

    def refused_once(self, *args, **kwargs):
        if not refused:
            refused.append(self)
            raise IntegrityError("duplicate key value violates unique constraint")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Blob, "save", refused_once)
    with transaction.atomic():
        recorded = blobs._record(ours)
    assert recorded.pk is not None and recorded.storage_name == ours.storage_name
    assert Blob.objects.get(sha256=_sha(data)).pk == recorded.pk
    assert blobs.open_blob(recorded).read() == data
