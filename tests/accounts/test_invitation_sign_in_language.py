"""The sign-in page an invitation's link sends a signed-out existing account to is in the
invitation's language, as the link's own pages are since 4eb2930, not the browser's (found by QA:
a Spanish invitation led from its Spanish page to an English sign-in page). Only on the browser
the link sent there, and only on the way back to that link; any other sign-in follows the browser,
and a language chosen with the switcher on this browser comes first."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import translation

from apps.accounts import services
from apps.organizations.models import Role
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db


def _lang(response) -> str:
    return response.content.decode().split('<html lang="', 1)[1].split('"', 1)[0]


@pytest.fixture
def spanish_invitation_to_an_account(org_a, org_b, admin_a):
    """A Spanish invitation to Alpha for the address of an existing account (of Beta, of no
    language of its own), and its link's path."""
    member(org_b, Role.CLINICIAN, email="consultora@beta.example")
    with translation.override("en"):
        _invitation, raw = services.invitation_create(organization=org_a, by=admin_a, role=Role.EXTERNAL_CONSULTANT,
                                                      email="consultora@beta.example", language="es")
    return f"/invite/{raw}/"


def _sign_in_url(page) -> str:
    return re.search(r'href="(/accounts/login/\?next=[^"]+)"', page.content.decode()).group(1).replace("&amp;", "&")


def test_the_sign_in_page_an_invitation_leads_to_is_in_its_language(spanish_invitation_to_an_account):
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    invitation_page = browser.get(spanish_invitation_to_an_account)
    assert invitation_page.status_code == 200 and _lang(invitation_page) == "es"
    sign_in_url = _sign_in_url(invitation_page)
    sign_in = browser.get(sign_in_url)
    assert sign_in.status_code == 200 and _lang(sign_in) == "es" and sign_in["Content-Language"] == "es"
    assert "Iniciar sesión" in sign_in.content.decode()
    # a wrong password: the page shown again is still in it
    wrong = browser.post(sign_in_url, {"login": "consultora@beta.example", "password": "not-the-password",
                                       "next": spanish_invitation_to_an_account})
    assert wrong.status_code == 200 and _lang(wrong) == "es"


def test_other_sign_ins_follow_the_browser(spanish_invitation_to_an_account):
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    sign_in_url = _sign_in_url(browser.get(spanish_invitation_to_an_account))
    assert _lang(browser.get("/accounts/login/")) == "en"  # not on the way back to the invitation
    assert _lang(browser.get("/accounts/login/?next=/cases/")) == "en"
    # another browser that never opened the link, sent to the same address: its own language
    assert _lang(Client(HTTP_ACCEPT_LANGUAGE="en").get(sign_in_url)) == "en"


def test_a_language_chosen_on_this_browser_comes_first(spanish_invitation_to_an_account):
    browser = Client(HTTP_ACCEPT_LANGUAGE="es")
    sign_in_url = _sign_in_url(browser.get(spanish_invitation_to_an_account))
    browser.post("/i18n/setlang/", {"language": "en", "next": sign_in_url})
    assert _lang(browser.get(sign_in_url)) == "en"


def test_the_signed_in_message_of_an_account_of_no_language_is_in_it(spanish_invitation_to_an_account, org_b):
    org_b.mfa_required_roles = []  # the password is all it takes: the message is said
    org_b.save(update_fields=["mfa_required_roles"])
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    sign_in_url = _sign_in_url(browser.get(spanish_invitation_to_an_account))
    page = browser.post(sign_in_url, {"login": "consultora@beta.example", "password": TEST_PASSWORD,
                                      "next": spanish_invitation_to_an_account}, follow=True)
    assert page.redirect_chain[-1][0] == spanish_invitation_to_an_account
    assert _lang(page) == "es" and "Ha iniciado sesión exitosamente como" in page.content.decode()


def test_the_session_keeps_no_raw_invitation_token(spanish_invitation_to_an_account):
    """The link's path holds the invitation's raw token, which the database keeps only hashed:
    the session (a row of the sessions table) keeps a hash of it; the language still follows."""
    raw = spanish_invitation_to_an_account.strip("/").split("/")[-1]
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    sign_in_url = _sign_in_url(browser.get(spanish_invitation_to_an_account))
    session = browser.session
    assert services.INVITATION_SIGN_IN in session
    assert raw not in json.dumps(dict(session.items()))
    stored = Session.objects.get(session_key=session.session_key)
    assert raw not in stored.session_data and raw not in json.dumps(stored.get_decoded())
    assert _lang(browser.get(sign_in_url)) == "es"
    # another link's path (the same invitation page with a token changed) is not taken for it
    assert _lang(browser.get(f"/accounts/login/?next=/invite/{raw[:-1]}x/")) == "en"
