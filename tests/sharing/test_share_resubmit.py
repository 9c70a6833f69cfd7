"""Sending the share confirmation again (a browser reload, "Confirm form resubmission", Back and
send) makes no second share: the review's form carries a one-time token that confirming
consumes. A double click is stopped in the browser (static/js/forms.js disables a POST form's
buttons once it is sent), but a reload sends the stored POST again as a new request."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from apps.sharing.models import Grant, ShareLink

pytestmark = pytest.mark.django_db


def _review(client: Client, url: str, form: dict) -> str:
    review = client.post(url, form)
    assert review.status_code == 200 and 'name="confirm"' in review.content.decode()
    return re.search(r'name="confirm_token" value="([^"]+)"', review.content.decode()).group(1)


def test_a_resubmitted_confirmation_makes_no_second_share(owner, case, consultant):
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    form = {"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": consultant.email}
    confirm = {**form, "confirm": "1", "confirm_token": _review(client, url, form)}
    done = client.post(url, confirm)
    assert done.status_code == 200 and b'data-testid="share-url"' in done.content
    grant = Grant.objects.get()

    again = client.post(url, confirm)  # the same POST, sent again by the browser
    assert again.status_code == 302
    assert again["Location"] == f"{reverse('sharing:my_shares')}#share-{grant.public_id}"
    assert [str(m) for m in get_messages(again.wsgi_request)] == ["This share was already created."]
    assert Grant.objects.count() == 1 and ShareLink.objects.count() == 1
    page = client.get(again["Location"]).content.decode()
    assert page.count("data-grant=") == 1 and f'id="share-{grant.public_id}"' in page
    assert "This share was already created." in page

    # a new review issues a new token: sharing the same again on purpose still works
    client.post(url, {**form, "confirm": "1", "confirm_token": _review(client, url, form)})
    assert Grant.objects.count() == 2


def test_a_confirmation_without_a_token_from_a_review_is_reviewed_again(owner, case, consultant):
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    form = {"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": consultant.email}
    for token in ({}, {"confirm_token": "made-up"}):
        response = client.post(url, {**form, "confirm": "1", **token})
        assert response.status_code == 200 and 'name="confirm_token"' in response.content.decode()
    assert not Grant.objects.exists()


def test_a_confirmation_refused_may_be_sent_again_once_it_can_succeed(owner, case, consultant):
    """The token is released when nothing was made (here the organization switched anonymous links
    off between the review and the confirmation: the service refuses it), so that sending it again
    is not taken for a share already created."""
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    form = {"use_case": "custom", "recipient_kind": "anonymous"}
    case.organization.anonymous_links_enabled = True
    case.organization.save()
    confirm = {**form, "confirm": "1", "confirm_token": _review(client, url, form)}
    case.organization.anonymous_links_enabled = False
    case.organization.save()
    refused = client.post(url, confirm)
    assert refused.status_code == 400 and not Grant.objects.exists()
    case.organization.anonymous_links_enabled = True
    case.organization.save()
    assert client.post(url, confirm).status_code == 200
    assert Grant.objects.count() == 1
