"""A transfer under way does not outlive the access it began under: a download (a study's or a
case's zip, a de-identified export) asks the policy again while it streams, and a grant revoked,
a link revoked, a case closed or a membership ended stops it there; the client gets fewer bytes
than announced and the trail says why. An expiry meanwhile does not stop it: the rule for
resuming after expiry (an hour after the transfer began) applies to the transfer itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from apps.renditions import views
from apps.sharing import services as sharing
from apps.sharing.models import Grant, ShareLink
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import member, open_anonymous_link

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _recheck_every_piece(monkeypatch):
    monkeypatch.setattr(views, "RECHECK_SECONDS", 0)


def _url(study, kind="preview"):
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _start(client: Client, url: str):
    """The response and its first piece: the transfer has begun."""
    response = client.get(url)
    assert response.status_code == 200
    pieces = iter(response.streaming_content)
    return response, pieces, next(pieces)


def _transfer_event():
    return AuditEvent.objects.filter(action__in=["download.completed", "download.incomplete"]).get()


def _consultant_share(study, owner):
    consultant = member(study.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    grant = sharing.grant_create(case=study.case, grantee=consultant, by=owner,
                                 permissions=["view", "download_preview"], renditions=["preview"],
                                 expires_at=timezone.now() + timedelta(hours=2))
    client = Client()
    client.force_login(consultant)
    return grant, client


def _assert_stopped(response, pieces, first: bytes) -> None:
    sent = len(first) + sum(len(p) for p in pieces)
    assert sent < int(response["Content-Length"])  # cut short: the client cannot take it as complete
    event = _transfer_event()
    assert event.action == "download.incomplete"
    assert event.details["stopped"] == "access_ended" and event.details["bytes_sent"] == sent
    assert AuditEvent.objects.filter(action="access.denied", outcome="denied").exists()


def test_a_grant_revoked_meanwhile_stops_the_transfer(ct_study, clinician_a):
    grant, client = _consultant_share(ct_study, clinician_a)
    response, pieces, first = _start(client, _url(ct_study))
    sharing.grants_revoke(grants=[grant], by=clinician_a, reason="test")
    _assert_stopped(response, pieces, first)


def test_a_link_revoked_meanwhile_stops_the_transfer(ct_study, clinician_a):
    org = ct_study.organization
    org.anonymous_links_enabled = True
    org.save()
    grant, link, raw = sharing.share_create(case=ct_study.case, by=clinician_a, use_case=UseCase.CUSTOM,
                                            recipient_kind=RecipientKind.ANONYMOUS, download_limit=3)
    Grant.objects.filter(pk=grant.pk).update(permissions=["view", "download_preview"], renditions=["preview"])
    client = Client()
    assert open_anonymous_link(client, raw).status_code == 302
    response, pieces, first = _start(client, _url(ct_study))
    sharing.share_link_revoke(link=ShareLink.objects.get(pk=link.pk), by=clinician_a)
    _assert_stopped(response, pieces, first)


def test_a_membership_ended_meanwhile_stops_a_case_download(ct_study, client_as, admin_a):
    radiologist = member(ct_study.organization, Role.RADIOLOGIST, email="rad@alpha.example")
    url = reverse("renditions:case_download", kwargs={"case_id": ct_study.case.public_id}) + "?rendition=original"
    response, pieces, first = _start(client_as(radiologist), url)
    membership_update(membership=Membership.objects.get(user=radiologist), by=admin_a, role=Role.RADIOLOGIST,
                      is_active=False)
    _assert_stopped(response, pieces, first)


def test_an_expiry_meanwhile_lets_the_transfer_finish(ct_study, clinician_a):
    """Not a revocation: the transfer goes on, as a resume of it would be accepted."""
    grant, client = _consultant_share(ct_study, clinician_a)
    response, pieces, first = _start(client, _url(ct_study))
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now())
    assert len(first) + sum(len(p) for p in pieces) == int(response["Content-Length"])
    assert _transfer_event().action == "download.completed"
    assert not AuditEvent.objects.filter(action="access.denied").exists()


@pytest.mark.parametrize("addressed", ["grantee", "group"])
def test_a_member_who_left_after_their_share_expired_cannot_resume(ct_study, clinician_a, admin_a, addressed):
    """A transfer begun under a share may be resumed for an hour after it began though the share
    expired meanwhile; but not once its recipient's membership ended: leaving ends the shares that
    can still be used that way, not only the unexpired ones."""
    consultant = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    terms = {"case": ct_study.case, "by": clinician_a, "permissions": ["view", "download_preview"],
             "renditions": ["preview"], "starts_at": timezone.now() - timedelta(hours=2),
             "expires_at": timezone.now() + timedelta(hours=2)}
    if addressed == "grantee":
        grant = sharing.grant_create(grantee=consultant, **terms)
    else:
        grant = sharing.grant_create(grantee=None, group_members=[consultant, clinician_a], group_name="Board",
                                     **terms)
    client = Client()
    client.force_login(consultant)
    head = client.head(_url(ct_study))
    half = int(head["Content-Length"]) // 2
    assert client.get(_url(ct_study), headers={"Range": f"bytes=0-{half - 1}"}).status_code == 206
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now())  # after the transfer began
    resume = {"Range": f"bytes={half}-", "If-Range": head["ETag"]}
    membership_update(membership=Membership.objects.get(user=consultant), by=admin_a,
                      role=Role.EXTERNAL_CONSULTANT, is_active=False)
    assert client.get(_url(ct_study), headers=resume).status_code == 404
    assert AuditEvent.objects.filter(action="access.denied", actor=consultant).exists()


def test_the_access_is_asked_no_more_often_than_recheck_seconds(ct_study, clinician_a, monkeypatch):
    monkeypatch.setattr(views, "RECHECK_SECONDS", 3600)
    grant, client = _consultant_share(ct_study, clinician_a)
    response, pieces, first = _start(client, _url(ct_study))
    sharing.grants_revoke(grants=[grant], by=clinician_a, reason="test")
    assert len(first) + sum(len(p) for p in pieces) == int(response["Content-Length"])


def test_a_grant_revoked_meanwhile_stops_the_transfer_under_asgi(ct_study, clinician_a, monkeypatch):
    """The same through Django's ASGI handler: the async stream asks the policy in a thread."""
    from asgiref.sync import async_to_sync, sync_to_async
    from django.test import AsyncClient

    monkeypatch.setattr(views, "BATCH", 1)  # one piece a batch: the question is asked between pieces
    grant, _client = _consultant_share(ct_study, clinician_a)
    client = AsyncClient()
    client.force_login(grant.grantee)

    async def fetch():
        response = await client.get(_url(ct_study))
        assert response.is_async
        pieces = aiter(response.streaming_content)
        got = len(await anext(pieces))
        await sync_to_async(sharing.grants_revoke)(grants=[grant], by=clinician_a, reason="test")
        got += sum([len(part) async for part in pieces])
        await asyncio.gather(*views._FINISHING)
        return response, got

    response, got = async_to_sync(fetch)()
    assert got < int(response["Content-Length"])
    event = _transfer_event()
    assert (event.action, event.details["stopped"], event.details["bytes_sent"]) == (
        "download.incomplete", "access_ended", got)


class _Pieces:
    """A package of three pieces (what ``_async_stream`` reads in its worker thread)."""

    def iter_range(self, start, end):
        yield from (b"a" * 10, b"b" * 10, b"c" * 10)


def test_the_asgi_stream_stops_too(monkeypatch):
    """Under ASGI (uvicorn) the body is the async stream: it asks the same question."""
    monkeypatch.setattr(views, "BATCH", 1)  # one piece a batch
    answers = iter([True, False])
    ended = []

    async def read() -> bytes:
        got = b""
        async for chunk in views._async_stream(_Pieces(), 0, 29, lambda *a: ended.append(a),
                                               lambda: next(answers)):
            got += chunk
        return got

    assert asyncio.run(read()) == b"a" * 10
    assert ended == [(10, False, True)]  # 10 bytes sent, not complete, stopped
