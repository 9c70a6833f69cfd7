"""A give-up (``study_renditions_stopped``, the sweep's ``_lost_give_up``) decided which renditions
were still being made, then marked them "Not available" in a second statement: another run that
finished one in between (its summary READY) was overwritten, "Not available" though made (found by
review). The study's renditions are now locked while it decides and marks, as
``rendition_summarize`` locks the one it sums: that run waits, and its READY follows the marking.
Two connections, on PostgreSQL (SQLite has one writer)."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.renditions import services
from apps.renditions.models import Kind, Rendition, RenditionFile, Status, renditions_progress
from tests.threads import in_thread_until_blocked

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]


def test_a_rendition_another_run_finishes_while_a_give_up_decides_stays_ready(ct_study, monkeypatch):
    # an image added since the preview was made: it lacks that image's file, "being made"
    RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW).order_by("pk").last().delete()
    assert renditions_progress([ct_study.pk], Kind.PREVIEW)[ct_study.pk].being_made
    real, failures, threads = services.renditions_progress, [], []

    def progress(study_ids, kind):  # the give-up has read the preview's progress: another run
        found = real(study_ids, kind)  # makes the missing file and sums the preview now
        if kind == Kind.PREVIEW and not threads:
            threads.append(in_thread_until_blocked(failures, services.study_renditions_make,
                                                   study_id=ct_study.pk, kinds=[Kind.PREVIEW]))
        return found

    monkeypatch.setattr(services, "renditions_progress", progress)
    services.study_renditions_stopped(study_id=ct_study.pk)
    threads[0].join(timeout=30)
    assert not failures
    preview = Rendition.objects.get(study=ct_study, kind=Kind.PREVIEW)
    assert RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW).count() == preview.files_ready
    assert preview.status == Status.READY
    assert not renditions_progress([ct_study.pk], Kind.PREVIEW)[ct_study.pk].being_made
