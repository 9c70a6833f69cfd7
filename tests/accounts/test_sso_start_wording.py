""""Sign in with your organization" answers every address with the same page, worded for a
person (found by QA: "If clinician@… signs in to Lightbox through its organization's single
sign-on, we have sent it an e-mail…" called the person "it")."""

from __future__ import annotations

import html

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

START = "/accounts/sso/"


@pytest.mark.parametrize("email", ["clinician@nowhere.example", "someone@alpha.example"])
def test_the_sent_page_speaks_of_the_address_and_a_person(email):
    response = Client().post(START, {"email": email}, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    assert 'data-testid="sso-start-sent"' in body
    assert (f"If this address ({email}) belongs to someone who signs in through their organization's single "
            "sign-on, we have sent it an e-mail with a link to continue to their organization's sign-in.") in body
    assert "signs in to Lightbox through its organization" not in body
