"""A download limit holds against Range requests: only a transfer under way is resumed uncounted,
and only by whoever began it (the signed-in user, or the link holder in the browser session that
began it). A suffix range ("the last N bytes", which may be the whole package) is a new download;
holding the same link in another session begins a counted download of its own; and no more than
twice the package goes out under one transfer (its first request and the resumes that re-send
what a dropped connection lost: the last byte handed to the network is not the last byte kept)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from apps.sharing import services as sharing
from apps.sharing.models import Grant, GrantDownload
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import LINK_PASSCODE, anonymous_original_terms, member, open_anonymous_link

pytestmark = pytest.mark.django_db


def _url(study, kind="original"):
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _link_share(study, owner, limit: int) -> str:
    org = study.organization
    org.anonymous_links_enabled = True
    org.save()
    _grant, _link, raw = sharing.share_create(case=study.case, by=owner, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS, download_limit=limit,
                                              renditions=["original"], **anonymous_original_terms(org))
    return raw


def _visitor(raw: str) -> Client:
    client = Client()
    assert open_anonymous_link(client, raw, passcode=LINK_PASSCODE).status_code == 302
    return client


def _count(study) -> int:
    return Grant.objects.get(case=study.case).download_count


def test_a_link_used_up_gives_nothing_more_by_range(ct_study, clinician_a):
    raw = _link_share(ct_study, clinician_a, limit=1)
    first = _visitor(raw)
    whole = first.get(_url(ct_study))
    assert whole.status_code == 200
    _body(whole)
    assert first.get(_url(ct_study)).status_code == 403  # the one download is used
    # the same visitor: a suffix range is a new download (refused); a resume may re-send what the
    # client may have lost, within twice the package under the transfer, then no more
    assert first.get(_url(ct_study), headers={"Range": "bytes=-100000000"}).status_code == 403
    again = first.get(_url(ct_study), headers={"Range": "bytes=1-"})
    assert again.status_code == 206
    _body(again)
    assert first.get(_url(ct_study), headers={"Range": "bytes=1-"}).status_code == 403
    # others the link was passed on to: a session of their own, no transfer of theirs to continue
    for _ in range(3):
        other = _visitor(raw)
        assert other.get(_url(ct_study), headers={"Range": "bytes=-100000000"}).status_code == 403
        assert other.get(_url(ct_study), headers={"Range": "bytes=1-"}).status_code == 403
    assert _count(ct_study) == 1


def test_a_download_whose_last_byte_went_out_may_still_be_resumed(ct_study, clinician_a):
    """QA: a phone read 5,000 bytes of a package the server had handed whole to the network, and
    dropped: the server's "sent" is not the client's "kept", so its resume from byte 5,000 is
    taken, uncounted, on the link's only download."""
    raw = _link_share(ct_study, clinician_a, limit=1)
    visitor = _visitor(raw)
    whole = visitor.get(_url(ct_study))
    assert whole.status_code == 200
    total = len(_body(whole))
    rest = visitor.get(_url(ct_study), headers={"Range": "bytes=5000-", "If-Range": whole["ETag"]})
    assert rest.status_code == 206 and len(_body(rest)) == total - 5000
    assert _count(ct_study) == 1


def test_a_transfer_under_way_is_resumed_in_its_own_session_only(ct_study, clinician_a):
    raw = _link_share(ct_study, clinician_a, limit=1)
    first = _visitor(raw)
    head = first.head(_url(ct_study))
    total, etag = int(head["Content-Length"]), head["ETag"]
    part = first.get(_url(ct_study), headers={"Range": f"bytes=0-{total // 2 - 1}"})
    assert part.status_code == 206
    begun = _body(part)
    # another holder of the link cannot ride on it
    other = _visitor(raw)
    assert other.get(_url(ct_study), headers={"Range": f"bytes={len(begun)}-", "If-Range": etag}).status_code == 403
    # the visitor who began it resumes it, uncounted, and gets the whole package
    rest = first.get(_url(ct_study), headers={"Range": f"bytes={len(begun)}-", "If-Range": etag})
    assert rest.status_code == 206
    whole = begun + _body(rest)
    assert len(whole) == total
    assert _count(ct_study) == 1
    transfer = GrantDownload.objects.get(grant__case=ct_study.case)
    assert transfer.resumes == 1 and transfer.bytes_sent == total
    staff = Client()
    staff.force_login(clinician_a)
    assert hashlib.sha256(whole).digest() == hashlib.sha256(_body(staff.get(_url(ct_study)))).digest()


def test_a_suffix_range_is_counted_as_a_download(ct_study, clinician_a):
    consultant = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    sharing.grant_create(case=ct_study.case, grantee=consultant, by=clinician_a,
                         permissions=["view", "download_original"], renditions=["original"], download_limit=2,
                         expires_at=timezone.now() + timedelta(hours=2))
    client = Client()
    client.force_login(consultant)
    part = client.get(_url(ct_study), headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    _body(part)
    assert _count(ct_study) == 1
    # the rest of a transfer under way: uncounted
    rest = client.get(_url(ct_study), headers={"Range": "bytes=100-"})
    assert rest.status_code == 206
    _body(rest)
    assert _count(ct_study) == 1
    # a suffix range is a download of its own, counted; the limit then refuses the next
    suffix = client.get(_url(ct_study), headers={"Range": "bytes=-50"})
    assert suffix.status_code == 206
    _body(suffix)
    assert _count(ct_study) == 2
    assert client.get(_url(ct_study), headers={"Range": "bytes=-50"}).status_code == 403


def test_closed_ranges_that_never_reach_the_end_finish_the_transfer_all_the_same(ct_study, clinician_a):
    """Resumes in closed ranges short of the last byte (bytes=1-N) never send the package's end:
    no resume may take what went out under the transfer past twice the package, and the next is
    a new download (refused: the one download is used)."""
    raw = _link_share(ct_study, clinician_a, limit=1)
    visitor = _visitor(raw)
    total = int(visitor.head(_url(ct_study))["Content-Length"])
    first = visitor.get(_url(ct_study), headers={"Range": "bytes=0-0"})
    assert first.status_code == 206
    _body(first)
    served = 0
    for _ in range(5):
        response = visitor.get(_url(ct_study), headers={"Range": f"bytes=1-{total - 2}"})
        if response.status_code != 206:
            assert response.status_code == 403
            break
        _body(response)
        served += 1
    # 1 + (total - 2) bytes, then another total - 2 fits in twice the package; a third would not
    assert served == 2
    transfer = GrantDownload.objects.get(grant__case=ct_study.case)
    assert transfer.bytes_sent == 1 + 2 * (total - 2)
    assert _count(ct_study) == 1


def test_a_resume_of_a_package_that_changed_is_a_new_download(ct_study, clinician_a):
    """If-Range naming another version of the package: the whole package as it is now (200),
    which is a new download, counted like one."""
    raw = _link_share(ct_study, clinician_a, limit=2)
    visitor = _visitor(raw)
    part = visitor.get(_url(ct_study), headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    _body(part)
    assert _count(ct_study) == 1
    changed = visitor.get(_url(ct_study), headers={"Range": "bytes=100-", "If-Range": '"another-version"'})
    assert changed.status_code == 200
    _body(changed)
    assert _count(ct_study) == 2
    assert visitor.get(_url(ct_study), headers={"Range": "bytes=100-", "If-Range": '"another-version"'}
                       ).status_code == 403


def test_resumes_sent_at_once_share_one_allowance(ct_study, clinician_a):
    """Resumes are decided and their bytes reserved before any of them ends: ten sent at once
    after a one-byte start get no more than twice the package between them."""
    raw = _link_share(ct_study, clinician_a, limit=1)
    visitor = _visitor(raw)
    total = int(visitor.head(_url(ct_study))["Content-Length"])
    first = visitor.get(_url(ct_study), headers={"Range": "bytes=0-0"})
    _body(first)
    opened = [visitor.get(_url(ct_study), headers={"Range": "bytes=1-"}) for _ in range(10)]
    served = [r for r in opened if r.status_code == 206]
    assert len(served) == 2 and all(r.status_code == 403 for r in opened if r not in served)
    for response in served:
        assert len(_body(response)) == total - 1
    assert GrantDownload.objects.get(grant__case=ct_study.case).bytes_sent == 1 + 2 * (total - 1)
    assert _count(ct_study) == 1
