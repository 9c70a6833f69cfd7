"""A de-identified export asked for while the Celery broker cannot be reached: the page shows it
queued (no 500), and it runs once the broker answers (apps.core.queue)."""

from __future__ import annotations

import pytest

from apps.core.models import UnsentTask
from apps.core.queue import unsent_tasks_send
from apps.deid.models import DeidExport, State
from tests.brokers import broker_unreachable
from tests.deid.test_exports import _start, ct_folder, world  # noqa: F401 - the fixtures

pytestmark = pytest.mark.django_db


def test_an_export_asked_for_while_the_broker_is_down_waits_and_runs_once_it_answers(
    world,  # noqa: F811 - the fixture imported above
    client_as,
    django_capture_on_commit_callbacks,
):
    client = client_as(world["clinician"])
    with broker_unreachable():
        response = _start(client, world["study"], django_capture_on_commit_callbacks)
    export = DeidExport.objects.get()
    assert response.status_code == 302 and response["Location"] == export.get_absolute_url()
    assert export.state == State.QUEUED and UnsentTask.objects.get().args == [export.pk]
    assert client.get(export.get_absolute_url()).status_code == 200
    assert unsent_tasks_send() == 1  # the broker answers again (here: tasks run eagerly)
    export.refresh_from_db()
    assert export.state == State.READY
