"""The recipients of a new share are told (an in-app notice and an e-mail) where to find it; the
sharer had to tell them by other means (found by QA). Neither says anything of the case; they go
once the share is committed (not while the organization's audit chain is held); a share to an
address, listed for its account only once its link is opened, tells nobody."""

from __future__ import annotations

import pytest

from apps.sharing import services
from apps.sharing.models import Notification
from apps.sharing.usecases import RecipientKind, UseCase

pytestmark = pytest.mark.django_db


def test_a_named_recipient_is_told_where_the_share_is(case, owner, consultant, mailoutbox,
                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                              recipient_kind=RecipientKind.USER, grantee=consultant)
    assert not Notification.objects.exists() and not mailoutbox  # nothing before the commit
    for callback in callbacks:
        callback()
    [note] = Notification.objects.filter(verb="share.received")
    assert note.user == consultant and note.url.endswith("/sharing/received/")
    [mail] = [m for m in mailoutbox if m.to == [consultant.email]]
    assert "Shared with me" in mail.body and case.title not in mail.body and case.title not in mail.subject
    assert not Notification.objects.filter(user=owner).exists()


def test_each_member_of_a_group_is_told(case, owner, consultant, radiologist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM, recipient_kind=RecipientKind.GROUP,
                              group_members=[consultant, radiologist], group_name="Board")
    assert {n.user for n in Notification.objects.filter(verb="share.received")} == {consultant, radiologist}


def test_a_share_to_an_address_tells_nobody(case, owner, consultant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.share_create(case=case, by=owner, use_case=UseCase.CONSULTANT, recipient_kind=RecipientKind.EMAIL,
                              grantee_email=consultant.email)
    assert not Notification.objects.filter(verb="share.received").exists()
