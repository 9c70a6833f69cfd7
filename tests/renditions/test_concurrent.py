"""Two runs of a study's renditions at once (two ingests of the same study each start one, or a
task is redelivered while the first still runs): both finish, every file is made once, and
every file's bytes are readable."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection, connections

from apps.imaging.blobs import open_blob
from apps.renditions.models import RenditionFile
from apps.renditions.services import study_renditions_make
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
@pytest.mark.parametrize("round_", range(2))
def test_two_runs_of_one_studys_renditions_at_once(org_a, small_ct, settings, round_):
    settings.LIGHTBOX_RENDITIONS_AFTER_INGEST = False
    [study] = ingest_folder(small_ct, org_a)
    assert not RenditionFile.objects.filter(study=study).exists()
    start = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def run():
        try:
            start.wait()
            study_renditions_make(study_id=study.pk)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    files = list(RenditionFile.objects.filter(study=study).select_related("blob"))
    pairs = [(f.rendition_id, f.instance_id) for f in files]
    assert files and len(pairs) == len(set(pairs))
    assert study_renditions_make(study_id=study.pk)  # a third run finds nothing missing ...
    assert RenditionFile.objects.filter(study=study).count() == len(files)  # ... and adds nothing
    for f in files:
        if f.blob_id is not None:
            assert hashlib.sha256(open_blob(f.blob).read()).hexdigest() == f.blob.sha256
