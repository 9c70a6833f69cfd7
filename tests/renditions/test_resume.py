"""Large transfers outlive short grants (issue 7): a download begun while its grant was live may be
resumed (a Range request) for up to one hour after it began even if the grant expired meanwhile,
never after a revocation, never once the case is closed; nothing else is accepted after expiry.
And HEAD on a download URL answers like GET without a body, counting nothing."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases.models import Case
from apps.organizations.models import Role
from apps.sharing import services as sharing
from apps.sharing.models import Grant, GrantDownload, ShareLink
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import member, open_anonymous_link

pytestmark = pytest.mark.django_db


def _url(study, kind="preview"):
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


class Share:
    """A preview share of ``study``'s case, held by a named consultant or by an anonymous link."""

    def __init__(self, study, owner, how: str):
        self.study, self.owner = study, owner
        expires = timezone.now() + timedelta(hours=2)
        self.link = None
        if how == "recipient":
            consultant = member(study.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
            self.grant = sharing.grant_create(case=study.case, grantee=consultant, by=owner,
                                              permissions=["view", "download_preview"], renditions=["preview"],
                                              download_limit=3, expires_at=expires)
            self.client = Client()
            self.client.force_login(consultant)
        else:
            org = study.organization
            org.anonymous_links_enabled = True
            org.save()
            self.grant, self.link, raw = sharing.share_create(case=study.case, by=owner, use_case=UseCase.CUSTOM,
                                                              recipient_kind=RecipientKind.ANONYMOUS,
                                                              download_limit=3)
            Grant.objects.filter(pk=self.grant.pk).update(permissions=["view", "download_preview"],
                                                          renditions=["preview"])
            self.client = Client()
            assert open_anonymous_link(self.client, raw).status_code == 302
        # shared two hours ago, so downloads may be dated back within its lifetime
        Grant.objects.filter(pk=self.grant.pk).update(starts_at=timezone.now() - timedelta(hours=2))

    def get(self, **headers):
        return self.client.get(_url(self.study), headers=headers)

    def expire(self, ago=timedelta(0)) -> None:
        """The grant expires (now, or ``ago``): after the download began, unless moved back."""
        Grant.objects.filter(pk=self.grant.pk).update(expires_at=timezone.now() - ago)

    def begin(self) -> tuple[bytes, int, str]:
        """The first half of the package, while the grant is live (a counted download)."""
        head = self.client.head(_url(self.study))
        total, etag = int(head["Content-Length"]), head["ETag"]
        first = self.get(Range=f"bytes=0-{total // 2 - 1}")
        assert first.status_code == 206
        return _body(first), total, etag

    def resume(self, first: bytes, etag: str):
        return self.get(Range=f"bytes={len(first)}-", **{"If-Range": etag})


@pytest.fixture(params=["recipient", "link_holder"])
def share(request, ct_study, clinician_a):
    return Share(ct_study, clinician_a, request.param)


@pytest.fixture
def full_sha(ct_study, client_as, clinician_a) -> str:
    return hashlib.sha256(_body(client_as(clinician_a).get(_url(ct_study)))).hexdigest()


def test_resume_after_the_grant_expired_gives_the_whole_package(share, full_sha):
    first, total, etag = share.begin()
    share.expire()
    rest = share.resume(first, etag)
    assert rest.status_code == 206
    assert rest["Content-Range"] == f"bytes {len(first)}-{total - 1}/{total}"
    assert hashlib.sha256(first + _body(rest)).hexdigest() == full_sha
    # counted once: the resume touched the download the first half began
    download = GrantDownload.objects.get(grant=share.grant)
    assert download.resumes == 1
    assert Grant.objects.get(pk=share.grant.pk).download_count == 1
    assert AuditEvent.objects.filter(action="download.completed").exists()


def test_nothing_else_is_accepted_after_expiry(share):
    first, _total, etag = share.begin()
    share.expire()
    before = AuditEvent.objects.filter(action="access.denied").count()
    # a fresh download, whole or from byte 0, is refused (the case is no longer visible: 404)
    assert share.get().status_code == 404
    assert share.get(Range="bytes=0-99").status_code == 404
    # a Range request for a package never begun (the whole case's) is refused
    case_url = reverse("renditions:case_download", kwargs={"case_id": share.study.case.public_id})
    other = share.client.get(case_url + "?rendition=preview", headers={"Range": "bytes=100-"})
    assert other.status_code == 404
    assert AuditEvent.objects.filter(action="access.denied").count() >= before + 3
    # while the package begun is still resumable
    assert share.resume(first, etag).status_code == 206


def test_a_range_request_with_no_earlier_download_is_refused_after_expiry(share):
    head = share.client.head(_url(share.study))
    assert head.status_code == 200
    share.expire()
    assert share.get(Range="bytes=100-").status_code == 404
    assert not GrantDownload.objects.filter(grant=share.grant).exists()
    # the control: once begun while live, the same request would have been a resume
    Grant.objects.filter(pk=share.grant.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    share.get(Range="bytes=0-99")
    share.expire()
    assert share.get(Range="bytes=100-").status_code == 206


def test_never_after_a_revocation(share):
    first, _total, etag = share.begin()
    share.expire()
    assert share.resume(first, etag).status_code == 206   # resumable until ...
    sharing.grants_revoke(grants=[share.grant], by=share.owner, reason="test")
    before = AuditEvent.objects.filter(action="access.denied").count()
    assert share.resume(first, etag).status_code == 404  # ... the grant is revoked
    denial = AuditEvent.objects.filter(action="access.denied").order_by("-pk").first()
    assert AuditEvent.objects.filter(action="access.denied").count() > before
    assert denial.details["wanted"] == "download_preview"


def test_never_after_the_link_is_revoked(ct_study, clinician_a):
    share = Share(ct_study, clinician_a, "link_holder")
    first, _total, etag = share.begin()
    share.expire()
    assert share.resume(first, etag).status_code == 206
    ShareLink.objects.filter(pk=share.link.pk).update(revoked_at=timezone.now())
    assert share.resume(first, etag).status_code == 404


def test_never_once_the_case_is_closed(share):
    first, _total, etag = share.begin()
    share.expire()
    assert share.resume(first, etag).status_code == 206
    Case.objects.filter(pk=share.study.case_id).update(status="closed")
    assert share.resume(first, etag).status_code == 404


def test_not_more_than_an_hour_after_the_download_began(share):
    first, _total, etag = share.begin()
    began = GrantDownload.objects.filter(grant=share.grant)
    share.expire(ago=timedelta(minutes=30))
    began.update(started_at=timezone.now() - timedelta(minutes=59))
    assert share.resume(first, etag).status_code == 206
    began.update(started_at=timezone.now() - timedelta(minutes=61))
    assert share.resume(first, etag).status_code == 404


def test_only_a_download_begun_while_the_grant_was_live(share):
    first, _total, etag = share.begin()
    share.expire(ago=timedelta(minutes=30))
    began = GrantDownload.objects.filter(grant=share.grant)
    began.update(started_at=timezone.now() - timedelta(minutes=40))
    assert share.resume(first, etag).status_code == 206
    # a download row dated after the expiry did not begin under a live grant
    began.update(started_at=timezone.now() - timedelta(minutes=20))
    assert share.resume(first, etag).status_code == 404


# ----------------------------------------------------------------------------- HEAD

HEADERS = ("Content-Length", "Accept-Ranges", "ETag", "Content-Disposition", "Content-Type")


def test_head_answers_like_get_without_a_body_or_a_count(share):
    head = share.client.head(_url(share.study))
    assert head.status_code == 200 and not head.streaming and head.content == b""
    # a Range from a byte after the first, no transfer of theirs begun: the package whole, as its
    # GET would send it (the client's first part is not known to be of this package)
    unbegun = share.client.head(_url(share.study), headers={"Range": "bytes=10-"})
    assert unbegun.status_code == 200 and "Content-Range" not in unbegun
    assert {h: unbegun[h] for h in HEADERS} == {h: head[h] for h in HEADERS}
    # nothing counted, nothing recorded as a transfer
    assert Grant.objects.get(pk=share.grant.pk).download_count == 0
    assert not GrantDownload.objects.filter(grant=share.grant).exists()
    assert not AuditEvent.objects.filter(action__startswith="download.").exists()
    get = share.get()
    assert get.status_code == 200
    assert {h: head[h] for h in HEADERS} == {h: get[h] for h in HEADERS}
    _body(get)
    # the transfer begun: a Range continues it, HEAD as GET
    ranged = share.client.head(_url(share.study), headers={"Range": "bytes=10-"})
    assert ranged.status_code == 206
    ranged_get = share.get(Range="bytes=10-")
    with_range = (*HEADERS, "Content-Range")
    assert {h: ranged[h] for h in with_range} == {h: ranged_get[h] for h in with_range}


def test_head_is_refused_like_get(share, ct_study, admin_b, client_as):
    # an outsider: 404 for both
    outsider = client_as(admin_b)
    assert outsider.head(_url(ct_study)).status_code == outsider.get(_url(ct_study)).status_code == 404
    # the download limit used up: HEAD is refused like a fresh GET, and counts nothing
    Grant.objects.filter(pk=share.grant.pk).update(download_count=3)
    assert share.client.head(_url(ct_study)).status_code == share.get().status_code == 403
    assert Grant.objects.get(pk=share.grant.pk).download_count == 3
    # the diagnostic original is not on a preview share, whatever the method
    assert share.client.head(_url(ct_study, "original")).status_code == 403


def test_the_refusal_page_speaks_to_an_anonymous_link_holder_of_the_link_not_of_a_role(share, ct_study):
    """A link holder has no role and no dashboard: the refusal says what the link allows and
    whom to ask. A signed-in recipient keeps the members' page."""
    Grant.objects.filter(pk=share.grant.pk).update(download_count=3)  # the downloads used up
    refused = share.get()
    assert refused.status_code == 403
    page = refused.content.decode()
    link_holder = share.link is not None
    assert ('data-testid="refused-link-holder"' in page) is link_holder
    assert ("Your role in this organization" in page) is not link_holder
    assert ("Back to the dashboard" in page) is not link_holder


def test_a_group_grant_is_resumed_after_expiry_only_by_the_member_who_began(ct_study, clinician_a):
    """A download row names who began it: after a group grant expires, the member who began a
    transfer resumes it; another member of the same group, who began nothing, is refused."""
    alice = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="alice@alpha.example")
    bob = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="bob@alpha.example")
    expires = timezone.now() + timedelta(hours=2)
    group = sharing.grant_create(case=ct_study.case, grantee=None, group_members=[alice, bob], group_name="Board",
                                 by=clinician_a, permissions=["view", "download_preview"], renditions=["preview"],
                                 expires_at=expires)
    clients = {}
    for user in (alice, bob):
        clients[user] = Client()
        clients[user].force_login(user)
    response = clients[alice].get(_url(ct_study, "preview"), headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    etag = response["ETag"]
    _body(response)
    assert list(GrantDownload.objects.filter(grant=group).values_list("by_user", flat=True)) == [alice.pk]
    Grant.objects.filter(pk=group.pk).update(expires_at=timezone.now())
    resume = {"Range": "bytes=100-", "If-Range": etag}
    assert clients[bob].get(_url(ct_study, "preview"), headers=resume).status_code == 404
    assert clients[alice].get(_url(ct_study, "preview"), headers=resume).status_code == 206


@pytest.mark.parametrize("range_header", ["bytes=1-", "bytes=-100000000"])
def test_a_member_cannot_take_another_members_download_as_a_resume(ct_study, clinician_a, range_header):
    """A resume continues the caller's own transfer under way: on a live group grant whose
    download limit is used up, another member's Range request (a suffix range is the whole
    package) is not a resume of the first member's download, and is refused like a fresh
    download; the first member resumes theirs from where it stopped."""
    alice = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="alice@alpha.example")
    bob = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="bob@alpha.example")
    group = sharing.grant_create(case=ct_study.case, grantee=None, group_members=[alice, bob], group_name="Board",
                                 by=clinician_a, permissions=["view", "download_preview"], renditions=["preview"],
                                 download_limit=1, expires_at=timezone.now() + timedelta(hours=2))
    clients = {}
    for user in (alice, bob):
        clients[user] = Client()
        clients[user].force_login(user)
    begun = clients[alice].get(_url(ct_study), headers={"Range": "bytes=0-0"})
    assert begun.status_code == 206
    _body(begun)
    assert clients[bob].get(_url(ct_study)).status_code == 403  # the limit is used up
    assert clients[bob].head(_url(ct_study), headers={"Range": range_header}).status_code == 403
    assert clients[bob].get(_url(ct_study), headers={"Range": range_header}).status_code == 403
    # alice resumes her own transfer, uncounted, to its end
    rest = clients[alice].get(_url(ct_study), headers={"Range": "bytes=1-"})
    assert rest.status_code == 206
    _body(rest)
    assert Grant.objects.get(pk=group.pk).download_count == 1
    # a suffix range is a new download, refused by the limit; a resume of hers may re-send what
    # she may have lost, up to twice the package under her transfer, then no more
    assert clients[alice].get(_url(ct_study), headers={"Range": "bytes=-100000000"}).status_code == 403
    again = clients[alice].get(_url(ct_study), headers={"Range": "bytes=1-"})
    assert again.status_code == 206
    _body(again)
    assert clients[alice].get(_url(ct_study), headers={"Range": "bytes=1-"}).status_code == 403
    assert Grant.objects.get(pk=group.pk).download_count == 1


def test_a_resume_on_a_live_grant_needing_mfa_needs_mfa(ct_study, clinician_a):
    """A grant marked mfa_required gives nothing to a session without the second factor, a
    resume of a transfer begun with it included."""
    from django.core.exceptions import PermissionDenied

    from apps.sharing import policy

    consultant = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="mfa@alpha.example")
    grant = sharing.grant_create(case=ct_study.case, grantee=consultant, by=clinician_a,
                                 permissions=["view", "download_preview"], renditions=["preview"],
                                 expires_at=timezone.now() + timedelta(hours=2))
    Grant.objects.filter(pk=grant.pk).update(mfa_required=True)
    key = f"study:{ct_study.public_id}:preview"
    consultant.is_verified = lambda: True
    assert policy.download_authorize(actor=consultant, obj=ct_study, rendition="preview", package_key=key) == grant
    consultant.is_verified = lambda: False
    with pytest.raises(PermissionDenied):
        policy.download_authorize(actor=consultant, obj=ct_study, rendition="preview", package_key=key, resumed=True)
    consultant.is_verified = lambda: True
    assert policy.download_authorize(actor=consultant, obj=ct_study, rendition="preview", package_key=key,
                                     resumed=True) == grant


# ----------------------------------------------------------------------------- 416

@pytest.mark.parametrize("range_header", ["bytes=100000000-", "bytes=500-100", "bytes=-0"])
def test_a_range_answered_416_uses_up_no_download(share, range_header):
    """A Range request the package cannot satisfy (past its end, backwards, an empty suffix) is
    answered 416 and counts nothing on the grant: the limit is for packages sent. (One from a byte
    after the first without If-Range is answered so only when it continues this client's transfer
    of the package as it is: otherwise the package goes out whole, tests/renditions/test_resume_splice.py;
    so a transfer is begun first.)"""
    _body(share.get(Range="bytes=0-0"))
    for _ in range(4):  # more than the grant's limit of 3
        refused = share.get(Range=range_header)
        assert refused.status_code == 416
        assert refused["Content-Range"].startswith("bytes */")
    assert Grant.objects.get(pk=share.grant.pk).download_count == 1
    assert GrantDownload.objects.filter(grant=share.grant).count() == 1
    # the grant's other downloads are all still there
    for _ in range(2):
        whole = share.get()
        assert whole.status_code == 200
        _body(whole)
    assert Grant.objects.get(pk=share.grant.pk).download_count == 3
    assert share.get().status_code == 403
