"""A share confirmation's one-time token after an unexpected error, and while its share is still
being made. The token is claimed ("pending") before the share is made; an error other than a
refusal (a bug: a 500) left it pending for good, so a reload after the error page said "This
share was already created." and sent the user to My shares, where no share was. It is released
on any error now; and a confirmation sent again while the first still runs says so, not that the
share was created."""

from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from apps.sharing import services
from apps.sharing.models import Grant
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db

FORM = {"use_case": "second_opinion", "recipient_kind": "user"}


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_a_confirmation_that_failed_with_an_error_may_be_sent_again(owner, case, consultant):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    confirm = {**FORM, "recipient_email": consultant.email, **confirmation(client)}
    with mock.patch("apps.sharing.services.share_create", side_effect=RuntimeError("unexpected")):
        assert client.post(url, confirm).status_code == 500
    assert not Grant.objects.exists()

    again = client.post(url, confirm)  # the user reloads the error page
    assert again.status_code == 200 and b'data-testid="share-url"' in again.content
    assert "This share was already created." not in _messages(again)
    assert Grant.objects.count() == 1


def test_a_confirmation_sent_again_while_the_first_still_runs_says_it_is_being_created(owner, case, consultant):
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    confirm = {**FORM, "recipient_email": consultant.email, **confirmation(client)}
    real = services.share_create
    seen = {}

    def slow_share_create(**kwargs):
        # the user reloads while the first confirmation is still creating the share (the same
        # browser: the same session)
        second = Client()
        second.cookies = client.cookies
        seen["response"] = second.post(url, confirm)
        return real(**kwargs)

    with mock.patch("apps.sharing.services.share_create", side_effect=slow_share_create):
        done = client.post(url, confirm)
    assert done.status_code == 200 and b'data-testid="share-url"' in done.content
    assert Grant.objects.count() == 1

    during = seen["response"]
    assert during.status_code == 302 and during["Location"] == reverse("sharing:my_shares")
    assert _messages(during) == ["This share is being created; check My shares in a moment."]
    page = client.get(during["Location"]).content.decode()  # (shows the message, once)
    assert "This share is being created; check My shares in a moment." in page

    # once made, sending it again points at the share made
    after = client.post(url, confirm)
    assert after.status_code == 302
    assert after["Location"] == f"{reverse('sharing:my_shares')}#share-{Grant.objects.get().public_id}"
    assert _messages(after) == ["This share was already created."]
