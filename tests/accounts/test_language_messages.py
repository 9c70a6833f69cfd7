"""The account's or the invitation's language, not the browser's, for what is said at sign-in and
on an invitation's pages (found by QA): a Spanish account signed in on an English browser read
allauth's "Successfully signed in as …" in English on its Spanish dashboard; a Spanish invitation
opened on an English browser was English, and so was "Welcome to … on Lightbox." above the Spanish
second-factor page after accepting it. And the invitation form names each language in itself, as
the header's switcher does ("Español", not "Spanish")."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from apps.accounts import services
from apps.accounts.models import User
from apps.organizations.models import Role
from tests.accounts.conftest import enrol, totp_code
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase-42"


def _lang(response) -> str:
    return response.content.decode().split('<html lang="', 1)[1].split('"', 1)[0]


def _invite(org, by, *, email: str = "consultora@elsewhere.example", language: str = "es",
            role: str = Role.EXTERNAL_CONSULTANT) -> str:
    with translation.override("en"):  # the inviter's page was English
        _invitation, raw = services.invitation_create(organization=org, by=by, role=role, email=email,
                                                      language=language)
    return raw


def test_the_signed_in_message_is_in_the_accounts_language(org_a):
    org_a.mfa_required_roles = []  # the password is all it takes: the message is said
    org_a.save(update_fields=["mfa_required_roles"])
    user = member(org_a, Role.CLINICIAN, email="clinica@alpha.example", language="es")
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = browser.post("/accounts/login/", {"login": user.email, "password": TEST_PASSWORD}, follow=True)
    html = page.content.decode()
    assert page.status_code == 200 and _lang(page) == "es"
    assert "Ha iniciado sesión exitosamente como" in html and "Successfully signed in" not in html


def test_without_a_language_of_its_own_the_message_follows_the_browser(org_a):
    org_a.mfa_required_roles = []
    org_a.save(update_fields=["mfa_required_roles"])
    user = member(org_a, Role.CLINICIAN, email="clinician@alpha.example")
    page = Client(HTTP_ACCEPT_LANGUAGE="en").post(
        "/accounts/login/", {"login": user.email, "password": TEST_PASSWORD}, follow=True)
    assert _lang(page) == "en" and "Successfully signed in" in page.content.decode()


def test_a_spanish_invitation_opens_in_spanish_on_an_english_browser(org_a, admin_a):
    raw = _invite(org_a, admin_a)
    page = Client(HTTP_ACCEPT_LANGUAGE="en").get(f"/invite/{raw}/")
    assert page.status_code == 200 and _lang(page) == "es" and page["Content-Language"] == "es"


def test_a_language_picked_on_the_invitation_page_wins(org_a, admin_a):
    raw = _invite(org_a, admin_a)
    browser = Client(HTTP_ACCEPT_LANGUAGE="es")
    browser.post("/i18n/setlang/", {"language": "en", "next": f"/invite/{raw}/"})
    assert _lang(browser.get(f"/invite/{raw}/")) == "en"
    browser.post(f"/invite/{raw}/", {"step": "account", "full_name": "Dana Consultora",
                                     "password1": PASSWORD, "password2": PASSWORD})
    assert User.objects.get(email="consultora@elsewhere.example").language == "en"


def test_after_accepting_the_welcome_is_in_the_invitations_language(org_a, admin_a):
    """QA's case: a new account; the second-factor page is Spanish, and the welcome above it too."""
    raw = _invite(org_a, admin_a)
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    page = browser.post(f"/invite/{raw}/", {"step": "account", "full_name": "Dana Consultora",
                                            "password1": PASSWORD, "password2": PASSWORD}, follow=True)
    html = page.content.decode()
    assert page.request["PATH_INFO"] == "/accounts/mfa/setup/" and _lang(page) == "es"
    assert "Bienvenido/a a Alpha Hospital en Lightbox." in html and "Welcome to" not in html


def test_an_account_of_no_language_accepting_takes_the_invitations(org_a, org_b, admin_a):
    """Someone already signed in, who never chose a language: the invitation's page, the welcome
    and the pages after it are in the invitation's language, until they pick another."""
    person = member(org_b, Role.CLINICIAN, email="clinician@beta.example")
    device = enrol(person)
    raw = _invite(org_a, admin_a, email=person.email, role=Role.CLINICIAN)
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    browser.force_login(person)
    browser.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})
    assert _lang(browser.get(f"/invite/{raw}/")) == "es"
    page = browser.post(f"/invite/{raw}/", {"step": "accept"}, follow=True)
    assert _lang(page) == "es" and "Bienvenido/a a Alpha Hospital en Lightbox." in page.content.decode()
    person.refresh_from_db()
    assert person.language == "es"


def test_an_account_with_a_language_keeps_it_on_an_invitation_in_another(org_a, org_b, admin_a):
    person = member(org_b, Role.CLINICIAN, email="clinician@beta.example", language="en")
    device = enrol(person)
    raw = _invite(org_a, admin_a, email=person.email, role=Role.CLINICIAN)
    browser = Client(HTTP_ACCEPT_LANGUAGE="es")
    browser.force_login(person)
    browser.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})
    assert _lang(browser.get(f"/invite/{raw}/")) == "en"
    page = browser.post(f"/invite/{raw}/", {"step": "accept"}, follow=True)
    assert _lang(page) == "en" and "Welcome to Alpha Hospital on Lightbox." in page.content.decode()
    person.refresh_from_db()
    assert person.language == "en"


@pytest.mark.parametrize("reader", ["en", "es"])
def test_the_invitation_form_names_each_language_in_itself_as_the_header_does(admin_a, client_as, reader):
    inviter = client_as(admin_a)
    inviter.post("/accounts/mfa/verify/", {"code": totp_code(enrol(admin_a)), "next": "/"})  # step-up
    html = inviter.get("/org/invitations/new/", HTTP_ACCEPT_LANGUAGE=reader).content.decode()
    form = html[html.index('name="language"', html.index("<main")):]
    form = form[:form.index("</select>")]
    header = html[html.index('id="language-select"'):]
    header = header[:header.index("</select>")]
    for name in ("English", "Español"):
        assert f">{name}</option>" in form and f">{name}</option>" in header
    assert "Spanish" not in form and "Inglés" not in form
    assert 'lang="es"' in form  # said in its own language, as the header's option
