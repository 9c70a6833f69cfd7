"""A person's language (User.language): chosen with the switcher, kept with the account, shown
on every device they sign in on; chosen by the inviter for an invitation and its new account."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import translation

from apps.accounts.models import Invitation, User
from apps.organizations.models import Role
from tests.accounts.conftest import enrol, totp_code
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db
COOKIE = settings.LANGUAGE_COOKIE_NAME


def _lang(response) -> str:
    html = response.content.decode()
    return html.split('<html lang="', 1)[1].split('"', 1)[0]


def _sign_in(client: Client, email: str):
    response = client.post("/accounts/login/", {"login": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return response


def test_a_choice_made_while_signed_in_is_kept_and_follows_the_person_to_another_browser(clinician_a, client_as):
    desk = client_as(clinician_a)
    assert desk.post("/i18n/setlang/", {"language": "es", "next": "/cases/"}).status_code == 302
    clinician_a.refresh_from_db()
    assert clinician_a.language == "es"

    tablet = Client(HTTP_ACCEPT_LANGUAGE="en")  # a browser that asks for English, no cookie yet
    _sign_in(tablet, clinician_a.email)
    page = tablet.get("/cases/")
    assert page.status_code == 200 and _lang(page) == "es" and page["Content-Language"] == "es"
    assert page.cookies[COOKIE].value == "es"  # the browser now remembers it too
    assert _lang(tablet.get("/cases/")) == "es"


def test_a_person_without_a_choice_follows_the_browser(clinician_a):
    browser = Client(HTTP_ACCEPT_LANGUAGE="es")
    _sign_in(browser, clinician_a.email)
    assert _lang(browser.get("/cases/")) == "es"
    clinician_a.refresh_from_db()
    assert clinician_a.language == ""  # what a browser asked for is not a choice


def test_a_choice_made_on_the_sign_in_page_becomes_the_accounts(clinician_a):
    browser = Client()
    browser.post("/i18n/setlang/", {"language": "es", "next": "/accounts/login/"})
    assert _lang(browser.get("/accounts/login/")) == "es"
    _sign_in(browser, clinician_a.email)
    clinician_a.refresh_from_db()
    assert clinician_a.language == "es"


def test_the_previous_persons_cookie_does_not_change_the_next_persons_language(org_a, clinician_a):
    colleague = member(org_a, Role.RADIOLOGIST, email="rad@alpha.example", language="en")
    workstation = Client()
    _sign_in(workstation, clinician_a.email)
    workstation.post("/i18n/setlang/", {"language": "es", "next": "/"})
    workstation.post("/accounts/logout/")
    assert workstation.cookies[COOKIE].value == "es"  # left behind on the shared browser
    _sign_in(workstation, colleague.email)
    assert _lang(workstation.get("/cases/")) == "en"
    colleague.refresh_from_db()
    assert colleague.language == "en"


def test_a_language_the_portal_does_not_have_changes_nothing(clinician_a, client_as):
    client_as(clinician_a).post("/i18n/setlang/", {"language": "xx", "next": "/"})
    clinician_a.refresh_from_db()
    assert clinician_a.language == ""


def test_an_invitation_is_written_in_the_language_the_inviter_chose(admin_a, client_as):
    inviter = client_as(admin_a)
    inviter.post("/accounts/mfa/verify/", {"code": totp_code(enrol(admin_a)), "next": "/"})  # step-up
    form = inviter.get("/org/invitations/new/", HTTP_ACCEPT_LANGUAGE="en")
    assert b'name="language"' in form.content and b'<option value="en" selected lang="en">' in form.content
    response = inviter.post("/org/invitations/new/", {"email": "consultora@elsewhere.example", "language": "es",
                                                      "role": Role.EXTERNAL_CONSULTANT}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    (message,) = mail.outbox
    assert "Ha sido invitado" in message.subject and message.body.startswith("Hola:")
    assert '<html lang="es">' in message.alternatives[0][0]
    assert Invitation.objects.get(email="consultora@elsewhere.example").language == "es"


def test_the_account_made_from_an_invitation_has_its_language(org_a, admin_a):
    from apps.accounts import services

    with translation.override("en"):
        _invitation, raw = services.invitation_create(organization=org_a, by=admin_a, role=Role.EXTERNAL_CONSULTANT,
                                                      email="consultora@elsewhere.example", language="es")
    browser = Client()
    password = "a-long-enough-passphrase-42"
    browser.post(f"/invite/{raw}/", {"step": "account", "full_name": "Dana Consultora",
                                     "password1": password, "password2": password})
    user = User.objects.get(email="consultora@elsewhere.example")
    assert user.language == "es"


def test_an_unknown_invitation_language_is_refused(org_a, admin_a):
    from django.core.exceptions import ValidationError

    from apps.accounts import services

    with pytest.raises(ValidationError):
        services.invitation_create(organization=org_a, by=admin_a, role=Role.EXTERNAL_CONSULTANT,
                                   email="x@elsewhere.example", language="xx")
    assert not Invitation.objects.exists()


def test_a_patient_invitation_is_written_in_the_language_chosen_for_the_patient(org_a, client_as):
    from datetime import date

    from tests.factories import CaseFactory

    radiologist = member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")
    case = CaseFactory(organization=org_a, created_by=radiologist, patient__birth_date=date(1961, 4, 2))
    sender = client_as(radiologist)
    sender.post("/accounts/mfa/verify/", {"code": totp_code(enrol(radiologist)), "next": "/"})  # step-up
    url = f"/cases/{case.public_id}/invite-patient/"
    assert b'name="language"' in sender.get(url).content
    response = sender.post(url, {"email": "paciente@home.example", "language": "es"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302, response.content[:300]
    (message,) = mail.outbox
    assert '<html lang="es">' in message.alternatives[0][0]
    assert Invitation.objects.get(email="paciente@home.example").language == "es"
