"""Object storage that cannot be reached during a de-identified export: the task retries (as on a
full disk) and marks the export failed only when it gives up, not at the first error."""

from __future__ import annotations

import pytest
from celery.exceptions import Retry

from apps.deid.models import State
from apps.deid.services import deid_export_start
from apps.deid.tasks import deid_export_task
from tests.deid.test_exports import ct_folder, world  # noqa: F401 - the fixtures
from tests.storage_outages import S3_UNREACHABLE

pytestmark = pytest.mark.django_db


def test_an_export_retries_while_object_storage_cannot_be_reached(world, settings):  # noqa: F811 - the fixture
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-S3", enqueue=False)
    settings.STORAGES = {**settings.STORAGES, "default": S3_UNREACHABLE}
    with pytest.raises(Retry):
        deid_export_task.apply(args=(export.pk,), retries=0)
    export.refresh_from_db()
    assert export.state != State.FAILED
    deid_export_task.apply(args=(export.pk,), retries=deid_export_task.max_retries, throw=False)
    export.refresh_from_db()
    assert export.state == State.FAILED  # gave up: the page says so
