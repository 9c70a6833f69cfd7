"""share.expired: recorded once for each grant whose time has run out (the periodic task), never
for a revoked or live one; an extension after expiry re-arms it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.sharing import services
from apps.sharing.models import Grant
from apps.sharing.tasks import share_expiries_record_task
from apps.sharing.usecases import RecipientKind, UseCase

pytestmark = pytest.mark.django_db


def _share(case, owner, consultant):
    grant, link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                              recipient_kind=RecipientKind.USER, grantee=consultant)
    return grant, link


def _end(grant, minutes_ago: int = 1) -> None:
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(minutes=minutes_ago))


def _expired():
    return AuditEvent.objects.filter(action="share.expired")


def test_each_expiry_is_recorded_once(case, owner, consultant):
    expired, link = _share(case, owner, consultant)
    revoked, _ = _share(case, owner, consultant)
    live, _ = _share(case, owner, consultant)
    _end(expired)
    _end(revoked)
    services.grants_revoke(grants=[revoked], by=owner, reason="done")
    assert share_expiries_record_task() == 1
    assert share_expiries_record_task() == 0  # safe to run twice
    event = _expired().get()
    assert event.target_id == str(expired.public_id) and event.case_ref == case.public_id
    assert event.organization_id == case.organization_id and event.actor is None
    assert event.details["links"] == [str(link.public_id)]
    assert not _expired().filter(target_id__in=[str(revoked.public_id), str(live.public_id)]).exists()


def test_an_extension_after_expiry_re_arms_it(case, owner, consultant):
    grant, _ = _share(case, owner, consultant)
    _end(grant, minutes_ago=10)
    share_expiries_record_task()
    grant.refresh_from_db()
    services.grant_extend(grant=grant, by=owner, expires_at=timezone.now() + timedelta(hours=1), reason="board moved")
    assert share_expiries_record_task() == 0  # live again
    _end(grant)
    assert share_expiries_record_task() == 1
    assert _expired().count() == 2


def test_the_task_is_scheduled():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "apps.sharing.tasks.share_expiries_record_task" in tasks
