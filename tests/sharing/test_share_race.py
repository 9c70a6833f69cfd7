"""A share naming a study is created while that study is deleted (two people, two connections).

Without a common lock, the deletion does not see the share's uncommitted row naming the study and
the share's foreign key to it fails at commit (PostgreSQL checks Django's foreign keys then): a
500 for the sharer. Share creation locks the named studies' rows, the lock ``study_delete`` takes
first, so the two run one after the other: whichever comes second sees what the first did."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.cases import services as case_services
from apps.cases.models import Case
from apps.imaging import services as imaging_services
from apps.imaging.models import Study
from apps.sharing import services
from apps.sharing.models import Grant
from tests.factories import GrantFactory, StudyFactory
from tests.share_steps import confirmation
from tests.threads import in_thread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)"),
]


def _waiting_on_a_lock() -> list[str]:
    """The statements of the other connections that wait for a lock."""
    with connection.cursor() as cursor:
        # inside a transaction pg_stat_activity keeps the statements it first read: read afresh
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return [row[0] for row in cursor.fetchall()]


class _Interleaved:
    """Work started on a thread of its own in the middle of the transaction under test."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.waiting: list[str] = []  # the statements waiting for a lock once it was started
        self.failures: list[BaseException] = []

    def finished(self) -> list[str]:
        """Wait for the thread; the statements that were waiting for a lock."""
        assert self.thread is not None, "never started"
        self.thread.join(timeout=30)
        return self.waiting


def _interleave(monkeypatch, module, name: str, fn, **kwargs) -> _Interleaved:
    """On the first call of ``module.name`` (inside the transaction under test), start ``fn`` on a
    thread with its own connection and wait (at most 5 s) until it waits for a lock; then go on."""
    real, run = getattr(module, name), _Interleaved()

    def patched(**kw):
        if run.thread is None:
            run.thread = in_thread(run.failures, fn, **kwargs)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not _waiting_on_a_lock():
                time.sleep(0.05)
            run.waiting = _waiting_on_a_lock()
        return real(**kw)

    monkeypatch.setattr(module, name, patched)
    return run


def _share_study(owner, study, consultant):
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:study_share", kwargs={"study_id": study.public_id})
    return client.post(url, {"use_case": "second_opinion", "recipient_kind": "user",
                             "recipient_email": consultant.email, "studies": [study.pk], **confirmation(client)})


def test_a_study_deleted_after_the_form_was_checked_is_refused_on_the_form(owner, case, consultant, radiologist,
                                                                           monkeypatch):
    """The deletion commits after the share form was validated (the study was still there) and
    before the share is written: the sharer is told on the form, nothing is shared, no 500."""
    study = StudyFactory(organization=case.organization, case=case)
    real_terms = services.share_terms
    failures: list[BaseException] = []

    def terms(**kwargs):  # inside the share's transaction, before anything is written
        in_thread(failures, imaging_services.study_delete, study=study, by=radiologist).join(timeout=30)
        return real_terms(**kwargs)

    monkeypatch.setattr(services, "share_terms", terms)
    response = _share_study(owner, study, consultant)
    assert not failures
    assert not Study.objects.filter(pk=study.pk).exists()
    assert response.status_code == 400
    assert "A study to be shared was deleted meanwhile" in response.content.decode()
    assert not Grant.objects.exists()


def test_a_deletion_while_a_share_commits_waits_then_revokes_it(owner, case, consultant, radiologist, monkeypatch):
    """The deletion starts after the share named the study and before it commits: it waits for the
    share, then sees it and revokes it (it named that study only; left naming nothing, it would
    cover the whole case). The share page shows the new share; the study is gone."""
    study = StudyFactory(organization=case.organization, case=case)
    # after the grant naming the study was written, before the commit
    deletion = _interleave(monkeypatch, services, "share_link_create", imaging_services.study_delete, study=study,
                           by=radiologist)
    response = _share_study(owner, study, consultant)
    # the deletion waited for the share at its first step, the lock on the study's row
    statements = deletion.finished()
    assert len(statements) == 1 and "imaging_study" in statements[0] and "FOR UPDATE" in statements[0]
    assert not deletion.failures
    assert response.status_code == 200
    assert not Study.objects.filter(pk=study.pk).exists()
    grant = Grant.objects.get()
    assert grant.revoked_at is not None and grant.revoke_reason == "study_deleted"
    assert not grant.studies.exists()


def test_a_renewal_and_a_deletion_of_its_study_at_once_wait_for_each_other(owner, case, consultant, radiologist,
                                                                             monkeypatch):
    """A renewal locks the study its grant names before the grant, as study_delete does (study,
    then the grants naming it): the deletion, started once the renewal holds its locks, waits for
    it and then revokes the renewed share. Locked the other way round, the two deadlocked and one
    of them failed (a 500)."""
    study = StudyFactory(organization=case.organization, case=case)
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="consultant", permissions=["view"], renditions=["preview"])
    grant.studies.set([study])
    # inside the renewal's transaction, its locks taken
    deletion = _interleave(monkeypatch, services, "grant_renew_refusal", imaging_services.study_delete, study=study,
                           by=radiologist)
    new, _link, _raw = services.grant_renew(grant=grant, by=owner)
    statements = deletion.finished()
    assert len(statements) == 1 and "imaging_study" in statements[0] and "FOR UPDATE" in statements[0]
    assert not deletion.failures
    assert not Study.objects.filter(pk=study.pk).exists()
    new.refresh_from_db()
    grant.refresh_from_db()
    assert grant.revoke_reason == "renewed"
    assert new.revoked_at is not None and new.revoke_reason == "study_deleted"


def test_a_link_opened_while_its_share_is_revoked_waits_for_each_other(owner, case, consultant, monkeypatch):
    """Opening a link counts a use on the link, then the opening on its grant; revoking takes the
    grant, then its links. The opening locks the grant first too: a revocation that starts while
    a link is being opened waits for it, then revokes the grant and the link. Locked the other way
    round, the two deadlocked (one of them a 500)."""
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="consultant", permissions=["view"], renditions=["preview"])
    link, _raw = services.share_link_create(grant=grant, by=owner)
    # inside the opening's transaction: the link's use counted
    revocation = _interleave(monkeypatch, services, "grant_record_open", services.grants_revoke, grants=[grant],
                             by=owner, reason="revoked by sharer")
    assert services.share_link_use(link=link, user=consultant) is True
    statements = revocation.finished()
    # the revocation waits at its first step, the grant's row (pg_stat_activity cuts the long SELECT)
    assert len(statements) == 1 and statements[0].startswith('SELECT "sharing_grant"."id"')
    assert not revocation.failures
    grant.refresh_from_db()
    link.refresh_from_db()
    assert grant.revoked_at is not None and grant.open_count == 1
    assert link.revoked_at is not None and link.use_count == 1


def _share_case(owner, case, consultant):
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    return client.post(url, {"use_case": "second_opinion", "recipient_kind": "user",
                             "recipient_email": consultant.email, **confirmation(client)})


def test_a_case_closed_after_the_share_form_was_checked_is_refused_on_the_form(owner, case, consultant,
                                                                               radiologist, monkeypatch):
    """The close commits after the share page read the case (open) and before the share is
    written: the share is refused on the form, as on a closed case. Checked on the case as the page
    had read it, the share went through on the closed case; its grant was never revoked (the close
    had run) and came back to life when the case was reopened."""
    real_terms = services.share_terms
    failures: list[BaseException] = []

    def terms(**kwargs):  # inside the share's transaction, before anything is written
        in_thread(failures, case_services.case_close, case=Case.objects.get(pk=case.pk), by=radiologist).join(30)
        return real_terms(**kwargs)

    monkeypatch.setattr(services, "share_terms", terms)
    response = _share_case(owner, case, consultant)
    assert not failures
    assert response.status_code == 400
    assert "This case is closed; nothing can be shared from it." in response.content.decode()
    assert not Grant.objects.exists()


def test_a_close_while_a_share_commits_waits_then_revokes_it(owner, case, consultant, radiologist, monkeypatch):
    """The close starts after the share wrote its grant and before it commits: it waits for the
    share (the case's row, locked by the share first), then revokes the new grant with the others.
    Reopening the case does not bring it back."""
    closing = _interleave(monkeypatch, services, "share_link_create", case_services.case_close,
                          case=Case.objects.get(pk=case.pk), by=radiologist)
    response = _share_case(owner, case, consultant)
    statements = closing.finished()
    assert len(statements) == 1 and statements[0].startswith('UPDATE "cases_case"')
    assert not closing.failures
    assert response.status_code == 200
    grant = Grant.objects.get()
    assert grant.revoked_at is not None and grant.revoke_reason == "case_closed"
    case_services.case_reopen(case=Case.objects.get(pk=case.pk), by=radiologist)
    grant.refresh_from_db()
    assert grant.revoked_at is not None


def test_a_renewal_and_a_close_at_once_wait_for_each_other(owner, case, consultant, radiologist, monkeypatch):
    """A renewal locks the case first, as the close does (the case, then its grants): a close that
    starts once the renewal holds its locks waits for it, then revokes the renewed share too."""
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="consultant", permissions=["view"], renditions=["preview"])
    closing = _interleave(monkeypatch, services, "grant_renew_refusal", case_services.case_close,
                          case=Case.objects.get(pk=case.pk), by=radiologist)
    new, _link, _raw = services.grant_renew(grant=grant, by=owner)
    statements = closing.finished()
    assert len(statements) == 1 and statements[0].startswith('UPDATE "cases_case"')
    assert not closing.failures
    new.refresh_from_db()
    assert new.revoked_at is not None and new.revoke_reason == "case_closed"
