""""Sign in with your organization" (/accounts/sso/) after a reviewer's findings on c00e71d: a count
of a typed address never refuses (anyone could keep a chosen staff member out), a hospital behind
one address is not refused after ten colleagues, the e-mail is sent after the request (neither
waiting on the mail server nor taking longer for staff), an organization's own entry and the
organization remembered on this browser need no e-mail, and the e-mailed link works once and names
no internal ids (apps.accounts.sso)."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from django.contrib.auth import login
from django.core import mail, signing
from django.core.mail.backends.locmem import EmailBackend
from django.shortcuts import redirect
from django.test import Client

from apps.accounts import sso, views
from apps.accounts.models import SSOConfig
from apps.accounts.tasks import sso_link_send_task
from apps.organizations.models import Role
from tests.factories import TEST_PASSWORD, member

pytestmark = pytest.mark.django_db

START = "/accounts/sso/"
LINK = re.compile(r"https?://\S+/accounts/sso/continue/\S+/")


class SlowBackend(EmailBackend):
    """A mail server that takes 0.5 s to take a message."""

    def send_messages(self, messages):
        time.sleep(0.5)
        return super().send_messages(messages)


@pytest.fixture
def alpha_sso_only(org_a, admin_a):
    """Alpha signs its staff in through its single sign-on only (password sign-in off)."""
    org_a.password_login_allowed = False
    org_a.save()
    return SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example/o", client_id="x",
                                    allowed_domains="alpha.example", enabled=True)


@pytest.fixture
def mailed(django_capture_on_commit_callbacks):
    """Runs the tasks queued once a request commits (the e-mail's) when the block ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _start(email, ip):
    return Client().post(START, {"email": email}, REMOTE_ADDR=ip)


def _password_refused(email):
    r = Client().post("/accounts/login/", {"login": email, "password": TEST_PASSWORD})
    return r.status_code == 200 and "signs staff in through its single sign-on" in r.content.decode()


def test_typing_a_staff_address_again_and_again_never_refuses_it(alpha_sso_only, settings, mailed):
    """Anyone may type anyone's address: past the e-mails an address gets in a window it is
    e-mailed no more, silently, and its owner is answered as ever (no 429 tied to an address)."""
    settings.LIGHTBOX_SSO_START_ADDRESS_MAX_EMAILS = 3
    member(alpha_sso_only.organization, Role.RADIOLOGIST, email="victim@alpha.example")
    assert _password_refused("victim@alpha.example")  # password sign-in is off for them
    with mailed():
        answers = [_start("victim@alpha.example", ip=f"192.0.2.{n}") for n in range(1, 6)]
        victim = _start("victim@alpha.example", ip="203.0.113.50")
    assert {r.status_code for r in [*answers, victim]} == {200}
    assert 'data-testid="sso-start-sent"' in victim.content.decode()
    assert len(mail.outbox) == 3  # the e-mails stop; nothing is refused


def test_a_hospitals_staff_behind_one_address_are_all_e_mailed(alpha_sso_only, mailed):
    """A hospital's staff reach the portal from its one public (NAT) address: the per-client limit
    (LIGHTBOX_SSO_START_CLIENT_MAX_TRIES, 100 in a window) is far above ten colleagues."""
    staff = [member(alpha_sso_only.organization, Role.CLINICIAN, email=f"doc{n}@alpha.example") for n in range(30)]
    with mailed():
        answers = [_start(u.email, ip="198.51.100.77").status_code for u in staff]
    assert answers == [200] * 30
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in staff)


def test_the_e_mail_is_sent_after_the_answer(alpha_sso_only, settings, mailed):
    """The answer neither waits for the mail server nor takes longer for a staff address: the
    e-mail is a task queued once the request commits."""
    settings.EMAIL_BACKEND = "tests.accounts.test_sso_start_review.SlowBackend"
    member(alpha_sso_only.organization, Role.CLINICIAN, email="sam@alpha.example")
    with mailed():
        t = time.monotonic()
        assert _start("sam@alpha.example", ip="203.0.113.3").status_code == 200
        answered = time.monotonic() - t
        assert mail.outbox == []
    assert answered < 0.4, f"the staff answer took {answered:.2f}s"
    assert [m.to for m in mail.outbox] == [["sam@alpha.example"]]  # sent after


def test_a_mail_server_that_never_answers_holds_the_e_mail_for_email_timeout_only(alpha_sso_only, settings, caplog):
    """An SMTP server that takes the connection and says nothing: the e-mail's task gives up after
    EMAIL_TIMEOUT (Django's default waits for ever), logs the error's type, and sends nothing."""
    from portal.settings import base

    assert base.EMAIL_TIMEOUT and base.EMAIL_TIMEOUT <= 30
    staff = member(alpha_sso_only.organization, Role.CLINICIAN, email="sam@alpha.example")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    guard = threading.Timer(8.0, silent.close)  # without a timeout the task would wait until then
    guard.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", silent.getsockname()[1]
        settings.EMAIL_TIMEOUT = 0.5  # the setting's value is read by the backend; 10 s in base
        t = time.monotonic()
        sso_link_send_task.apply(args=(staff.pk, alpha_sso_only.pk), throw=True)
        assert time.monotonic() - t < 3
    finally:
        guard.cancel()
        silent.close()
    assert "E-mail sso_link not sent" in caplog.text
    assert "sam@alpha.example" not in caplog.text


def test_the_e_mailed_link_works_once_and_names_public_ids_only(alpha_sso_only, monkeypatch, mailed):
    sam = member(alpha_sso_only.organization, Role.CLINICIAN, email="sam@alpha.example")
    with mailed():
        _start("sam@alpha.example", ip="203.0.113.3")
    link = LINK.search(mail.outbox[0].body).group(0)
    data = signing.loads(link.rstrip("/").rsplit("/", 1)[1], salt=sso._SALT)
    assert data["u"] == str(sam.public_id) and data["c"] == str(alpha_sso_only.public_id)
    assert str(sam.pk) not in data.values() and sam.pk not in data.values()
    started = []
    monkeypatch.setattr(views, "sso_provider_login",
                        lambda request, pid: started.append(pid) or redirect("/at-the-idp/"))
    first = Client()
    assert first.get(link).status_code == 200  # opening it (a mail scanner too) uses nothing up
    assert first.get(link).status_code == 200
    assert first.post(link)["Location"] == "/at-the-idp/"
    again = Client().post(link)  # forwarded, or read from the mailbox later
    assert again.status_code == 400 and "expired or can no longer be used" in again.content.decode()
    assert Client().get(link).status_code == 400
    assert started == [alpha_sso_only.provider_id]


def test_an_organizations_own_entry_starts_its_sign_in_without_an_e_mail(alpha_sso_only, org_b, monkeypatch):
    started = []
    monkeypatch.setattr(views, "sso_provider_login",
                        lambda request, pid: started.append(pid) or redirect("/at-the-idp/"))
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/sso/alpha/")
    assert page.status_code == 200 and "Continue to Alpha Hospital" in page.content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert client.post("/accounts/sso/alpha/").status_code == 403 and started == []  # CSRF-checked
    assert client.post("/accounts/sso/alpha/", {"csrfmiddlewaretoken": token})["Location"] == "/at-the-idp/"
    assert started == [alpha_sso_only.provider_id]
    assert mail.outbox == []
    # an organization without single sign-on on, or none at all: not found
    assert Client().get(f"/accounts/sso/{org_b.slug}/").status_code == 404
    assert Client().get("/accounts/sso/no-such-org/").status_code == 404
    SSOConfig.objects.filter(pk=alpha_sso_only.pk).update(enabled=False)
    assert Client().post("/accounts/sso/alpha/").status_code == 404


def test_the_browser_remembers_the_organization_it_last_signed_in_with(alpha_sso_only, monkeypatch):
    """After a single sign-on the provider's answer was accepted for, the sign-in page on that
    browser offers "Continue with <organization>", leading to its own entry; on another browser,
    or with the cookie altered, it does not."""
    from allauth.socialaccount.providers.openid_connect import views as oidc_views

    sam = member(alpha_sso_only.organization, Role.CLINICIAN, email="sam@alpha.example")

    def accepted(request, provider_id):  # the provider's answer, accepted by pre_social_login
        request.lightbox_sso_accepted = alpha_sso_only
        login(request, sam, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("/")

    def refused(request, provider_id):
        return redirect("/")

    browser = Client()
    assert "sso-remembered" not in browser.get("/accounts/login/").content.decode()
    monkeypatch.setattr(oidc_views, "callback", refused)
    browser.get(f"/accounts/oidc/{alpha_sso_only.provider_id}/login/callback/")
    assert sso.REMEMBERED_COOKIE not in browser.cookies
    monkeypatch.setattr(oidc_views, "callback", accepted)
    browser.get(f"/accounts/oidc/{alpha_sso_only.provider_id}/login/callback/")
    cookie = browser.cookies[sso.REMEMBERED_COOKIE]
    assert cookie["httponly"] and "alpha" in cookie.value
    browser.post("/accounts/logout/")
    page = browser.get("/accounts/login/").content.decode()
    assert 'data-testid="sso-remembered"' in page and "Continue with Alpha Hospital" in page
    assert 'href="/accounts/sso/alpha/"' in page
    assert "sso-remembered" not in Client().get("/accounts/login/").content.decode()  # another browser
    forged = Client()
    forged.cookies[sso.REMEMBERED_COOKIE] = cookie.value.replace("alpha", "beta")
    assert "sso-remembered" not in forged.get("/accounts/login/").content.decode()
