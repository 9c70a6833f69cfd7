"""The renditions part of the demo (called from apps.core.demo.seed): every ready demo study gets
its renditions, once the seed's transaction commits (eager Celery runs them in-process on the
embedded default). Idempotent: the task makes only what is missing."""

from __future__ import annotations

from functools import partial

from django.db import transaction

from apps.imaging.models import Study
from apps.organizations.models import Organization


def seed_renditions(org: Organization) -> None:
    from apps.renditions.tasks import study_renditions_task

    for study_id in Study.objects.for_org(org.pk).ready().values_list("pk", flat=True):
        transaction.on_commit(partial(study_renditions_task.delay, study_id))
