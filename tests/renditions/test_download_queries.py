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
from apps.organizations.models import Membership, Organization, Role
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


def _assert_read(queries: list[str], *, signed_in: bool, reader: bool, times: int = 2) -> None:
    """The memberships (for a signed-in actor) and the grants (for a reader) read ``times``: by
    default twice, the request's reading and once afresh after the package is built."""
    memberships = reads_of(queries, "organizations_membership")
    assert len(memberships) == (times if signed_in else 0), memberships
    grants = policy_grant_reads(queries)
    assert len(grants) == (times if reader else 0), grants


@pytest.mark.parametrize("who", ["staff", "recipient", "link_holder"])
def test_a_download_reads_the_memberships_and_the_grants_twice(ct_study, clinician_a, client_as, who):
    client = client_as(clinician_a) if who == "staff" else Share(ct_study, clinician_a, who).client
    client.get(_url(ct_study), headers={"Range": "bytes=0-0"})  # the session settled (a download counted)
    status, queries = _download_queries(client, _url(ct_study))
    assert status == 200
    _assert_read(queries, signed_in=who != "link_holder", reader=who != "staff")
    # 20, 38, 34 before; a recipient's finished transfer is marked so (one UPDATE: it is not resumed again);
    # one more: whether the study has the rendition at all (``views._not_available``, as its page says);
    # three more: download.started recorded before the first byte (``audit.record``); one more for a
    # signed-in reader: the idle limit of the organizations whose shares they hold (2712a59: the
    # strictest limit of each organization for the person's role there, consultants' where shared with)
    assert len(queries) <= {"staff": 22, "recipient": 35, "link_holder": 34}[who], queries


@pytest.mark.parametrize("how", ["recipient", "link_holder"])
def test_a_resumed_download_reads_them_twice_and_counts_once(ct_study, clinician_a, how):
    share = Share(ct_study, clinician_a, how)
    first, _total, etag = share.begin()
    status, queries = _download_queries(share.client, _url(ct_study), Range=f"bytes={len(first)}-",
                                        **{"If-Range": etag})
    assert status == 206
    _assert_read(queries, signed_in=how == "recipient", reader=True)
    share.grant.refresh_from_db()
    assert share.grant.download_count == 1  # the resume was not counted again


def test_a_refused_download_reads_them_once(ct_study, clinician_a, client_as):
    """A coordinator sees the case, not its images: refused (403), the refusal recorded."""
    coordinator = member(ct_study.organization, Role.COORDINATOR, email="coordinator@alpha.example")
    status, queries = _download_queries(client_as(coordinator), _url(ct_study))
    assert status == 403
    _assert_read(queries, signed_in=True, reader=True, times=1)  # refused before any package is built
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

    def slow_build(study, kind, **options):
        package = build(study, kind, **options)
        meanwhile()
        time.sleep(0.25)
        return package

    monkeypatch.setattr(views, "study_package", slow_build)


@pytest.mark.parametrize("resumed", [False, True])
def test_a_grant_revoked_while_the_package_is_built_is_refused_and_not_counted(ct_study, clinician_a, monkeypatch,
                                                                                 resumed):
    """The decision made before the package is built is made again, afresh, before the download
    is counted and sent: a grant revoked meanwhile (closing its case revokes it too) is refused
    cleanly (404: the case is no longer theirs to see), nothing counted, no byte sent; a resumed
    transfer likewise. The count itself also claims a download only on a grant still live."""
    share = Share(ct_study, clinician_a, "recipient")
    headers = {}
    if resumed:
        _body, total, etag = share.begin()
        headers = {"Range": f"bytes={total // 2}-", "If-Range": etag}
    counted = GrantDownload.objects.filter(grant=share.grant).count()
    stopped = AuditEvent.objects.filter(action="download.incomplete").count()  # the first half's, if begun
    _slow_build(monkeypatch, lambda: sharing.grants_revoke(grants=[share.grant], by=clinician_a, reason="test"))
    response = share.get(**headers)
    assert response.status_code == 404
    share.grant.refresh_from_db()
    assert share.grant.download_count == (1 if resumed else 0)
    assert GrantDownload.objects.filter(grant=share.grant).count() == counted
    assert AuditEvent.objects.filter(action="download.incomplete").count() == stopped  # no transfer began


def _revoke_link(share):
    ShareLink.objects.filter(pk=share.link.pk).update(revoked_at=timezone.now())


def _links_off(share):
    Organization.objects.filter(pk=share.study.organization_id).update(anonymous_links_enabled=False)


@pytest.mark.parametrize("end_access", [_revoke_link, _links_off], ids=["link_revoked", "links_switched_off"])
def test_a_link_ended_while_the_package_is_built_is_refused_and_not_counted(ct_study, clinician_a, monkeypatch,
                                                                             end_access):
    """What the grant's own row does not say (its anonymous link revoked, or anonymous links
    switched off for the organization) is decided afresh too: refused, nothing counted or sent."""
    share = Share(ct_study, clinician_a, "link")
    _slow_build(monkeypatch, lambda: end_access(share))
    response = share.get()
    assert response.status_code == 404
    share.grant.refresh_from_db()
    assert share.grant.download_count == 0
    assert not GrantDownload.objects.filter(grant=share.grant).exists()
    assert not AuditEvent.objects.filter(action__in=["grant.download", "download.incomplete"]).exists()


def test_a_membership_ended_while_the_package_is_built_is_refused(ct_study, clinician_a, client_as, monkeypatch):
    """Staff download on their role, nothing to count: their role is asked again, afresh."""
    staff = client_as(clinician_a)
    _slow_build(monkeypatch, lambda: Membership.objects.filter(user=clinician_a).update(is_active=False))
    assert staff.get(_url(ct_study)).status_code == 404
    assert not AuditEvent.objects.filter(action__in=["download.completed", "download.incomplete"]).exists()
