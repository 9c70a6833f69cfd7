"""A download is decided once a request (``policy.download_decide``) and counted on that decision
(``policy.download_count``): the user's memberships are read once (the middleware's reading,
``request.my_memberships``) and a reader's grants once. It read the memberships five times for a
member of staff (seven for a recipient) and the grants four times: the case was checked visible,
then the download decided, before the package was built and again to count it, each reading them
afresh. The decision is the request's only: the next download decides again, and the transfer's
checks while it streams read afresh (tests/renditions/test_access_ends_mid_transfer.py)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from apps.renditions import views
from apps.sharing import services as sharing
from apps.sharing.models import GrantDownload, ShareLink
from tests.factories import member
from tests.pages import policy_grant_reads, reads_of
from tests.renditions.test_resume import Share

pytestmark = pytest.mark.django_db


def _url(study, kind="preview"):
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _download_queries(client: Client, url: str, **headers) -> tuple[int, list[str]]:
    """One download (its body read to the end, so the transfer is recorded): its status and the
    SQL of its queries."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, headers=headers)
        if response.status_code in (200, 206):
            b"".join(response.streaming_content)
    return response.status_code, [q["sql"] for q in ctx.captured_queries]


def _assert_read_once(queries: list[str], *, signed_in: bool, reader: bool) -> None:
    memberships = reads_of(queries, "organizations_membership")
    assert len(memberships) == (1 if signed_in else 0), memberships
    grants = policy_grant_reads(queries)
    assert len(grants) == (1 if reader else 0), grants


@pytest.mark.parametrize("who", ["staff", "recipient", "link_holder"])
def test_a_download_reads_the_memberships_and_the_grants_once(ct_study, clinician_a, client_as, who):
    client = client_as(clinician_a) if who == "staff" else Share(ct_study, clinician_a, who).client
    client.get(_url(ct_study), headers={"Range": "bytes=0-0"})  # the session settled (a download counted)
    status, queries = _download_queries(client, _url(ct_study))
    assert status == 200
    _assert_read_once(queries, signed_in=who != "link_holder", reader=who != "staff")
    assert len(queries) <= {"staff": 16, "recipient": 26, "link_holder": 27}[who], queries  # 20, 38, 34 before


@pytest.mark.parametrize("how", ["recipient", "link_holder"])
def test_a_resumed_download_reads_them_once_and_counts_once(ct_study, clinician_a, how):
    share = Share(ct_study, clinician_a, how)
    first, _total, etag = share.begin()
    status, queries = _download_queries(share.client, _url(ct_study), Range=f"bytes={len(first)}-",
                                        **{"If-Range": etag})
    assert status == 206
    _assert_read_once(queries, signed_in=how == "recipient", reader=True)
    share.grant.refresh_from_db()
    assert share.grant.download_count == 1  # the resume was not counted again


def test_a_refused_download_reads_them_once(ct_study, clinician_a, client_as):
    """A coordinator sees the case, not its images: refused (403), the refusal recorded."""
    coordinator = member(ct_study.organization, Role.COORDINATOR, email="coordinator@alpha.example")
    status, queries = _download_queries(client_as(coordinator), _url(ct_study))
    assert status == 403
    _assert_read_once(queries, signed_in=True, reader=True)
    assert AuditEvent.objects.filter(action="access.denied", details__wanted="download_preview").exists()


def test_the_next_download_decides_afresh(ct_study, clinician_a, client_as):
    """Each request decides on its own reading: a download uses up the grant's last one and the
    next is refused; a member whose membership ended is refused at the next download."""
    consultant = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    sharing.grant_create(case=ct_study.case, grantee=consultant, by=clinician_a,
                         permissions=["view", "download_preview"], renditions=["preview"], download_limit=1,
                         expires_at=timezone.now() + timedelta(hours=2))
    client = client_as(consultant)
    assert _download_queries(client, _url(ct_study))[0] == 200
    assert _download_queries(client, _url(ct_study))[0] == 403

    staff = client_as(clinician_a)
    assert _download_queries(staff, _url(ct_study))[0] == 200
    Membership.objects.filter(user=clinician_a).update(is_active=False)
    assert _download_queries(staff, _url(ct_study))[0] == 404


def _slow_build(monkeypatch, meanwhile) -> None:
    """The package takes longer to build than RECHECK_SECONDS, and ``meanwhile`` happens during it."""
    monkeypatch.setattr(views, "RECHECK_SECONDS", 0.2)
    build = views.study_package

    def slow_build(study, kind):
        package = build(study, kind)
        meanwhile()
        time.sleep(0.25)
        return package

    monkeypatch.setattr(views, "study_package", slow_build)


@pytest.mark.parametrize("resumed", [False, True])
def test_a_grant_revoked_while_the_package_is_built_is_refused_and_not_counted(ct_study, clinician_a, monkeypatch,
                                                                                 resumed):
    """The decision is made before the package is built; counting it, after, claims the download
    only on a grant still live: one revoked meanwhile (closing its case revokes it too) is refused
    cleanly, nothing counted, no byte sent; a resumed transfer likewise (404, as any refused
    resume of a case its reader no longer sees)."""
    share = Share(ct_study, clinician_a, "recipient")
    headers = {}
    if resumed:
        _body, total, etag = share.begin()
        headers = {"Range": f"bytes={total // 2}-", "If-Range": etag}
    counted = GrantDownload.objects.filter(grant=share.grant).count()
    stopped = AuditEvent.objects.filter(action="download.incomplete").count()  # the first half's, if begun
    _slow_build(monkeypatch, lambda: sharing.grants_revoke(grants=[share.grant], by=clinician_a, reason="test"))
    response = share.get(**headers)
    assert response.status_code == (404 if resumed else 403)
    share.grant.refresh_from_db()
    assert share.grant.download_count == (1 if resumed else 0)
    assert GrantDownload.objects.filter(grant=share.grant).count() == counted
    assert AuditEvent.objects.filter(action="download.incomplete").count() == stopped  # no transfer began


def test_a_link_revoked_while_the_package_is_built_sends_no_byte(ct_study, clinician_a, monkeypatch):
    """What the count cannot see (the anonymous link revoked, its grant still live): when building
    took RECHECK_SECONDS or more, the transfer asks the policy afresh before its first byte (not
    RECHECK_SECONDS after it began), and the holder gets nothing."""
    share = Share(ct_study, clinician_a, "link")
    _slow_build(monkeypatch, lambda: ShareLink.objects.filter(pk=share.link.pk).update(revoked_at=timezone.now()))
    response = share.get()
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b""
    event = AuditEvent.objects.get(action="download.incomplete")
    assert event.details["stopped"] == views.STOPPED_ACCESS_ENDED and event.details["bytes_sent"] == 0
