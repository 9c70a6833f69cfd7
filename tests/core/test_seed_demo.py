from __future__ import annotations

import io
import os
import signal
import subprocess
import urllib.request
from http.cookiejar import CookieJar

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.accounts.models import User
from apps.organizations.models import Membership, Organization, Role
from tests.servers import ROOT, clean_env, free_port, wait_answering

pytestmark = pytest.mark.django_db


def test_seed_demo_makes_two_organizations_with_every_role_and_is_idempotent():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO())
    assert Organization.objects.count() == 2
    for org in Organization.objects.all():
        roles = set(Membership.objects.filter(organization=org).values_list("role", flat=True))
        assert roles == set(Role.values)
    shared = User.objects.get(email="dr.morgan@lightbox.example")
    assert shared.memberships.count() == 2
    text = out.getvalue()
    assert "lightbox-demo" in text and "admin@northwind.example" in text  # credentials printed
    assert "demo_otp_code" in text  # and how the second factor of admins and consultants works
    assert User.objects.count() == 13
    # one demo person chose Spanish: signed in on a browser that asks for English, pages are Spanish
    from django.test import Client

    assert User.objects.get(email="clinician@harborvalley.example").language == "es"
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert browser.post("/accounts/login/", {"login": "clinician@harborvalley.example",
                                             "password": "lightbox-demo"}).status_code == 302
    assert '<html lang="es">' in browser.get("/", follow=True).content.decode()


def test_seed_demo_is_refused_where_the_demo_is_not_allowed(settings):
    settings.LIGHTBOX_DEMO_ALLOWED = False
    with pytest.raises(CommandError, match="refused"):
        call_command("seed_demo")
    assert not Organization.objects.exists()


@pytest.mark.slow
def test_make_run_serves_the_demo(tmp_path):
    """The README's run command (past its install step, which CI exercises) serves the demo:
    migrate, seed, uvicorn; a demo account signs in over HTTP."""
    port = free_port()
    env = clean_env(LIGHTBOX_VAR_DIR=str(tmp_path), PORT=str(port), VENV=str(ROOT / ".venv"))
    proc = subprocess.Popen(["make", "--no-print-directory", "demo-db", "serve", f"PORT={port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_answering(proc, f"{base}/healthz", timeout=90, output=proc.stdout.read)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        login_page = opener.open(f"{base}/accounts/login/").read().decode()
        token = login_page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        data = f"csrfmiddlewaretoken={token}&login=admin%40northwind.example&password=lightbox-demo".encode()
        login_url = f"{base}/accounts/login/"
        req = urllib.request.Request(login_url, data=data, headers={"Referer": login_url})
        page = opener.open(req)
        dashboard = page.read().decode()
        # an org admin must use a second factor: the demo authenticator's current code
        assert "/accounts/mfa/verify/" in page.url
        from django_otp.oath import TOTP

        from apps.accounts.demo import DEMO_TOTP_KEY

        token = dashboard.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        code = f"{TOTP(bytes.fromhex(DEMO_TOTP_KEY)).token():06d}"
        req = urllib.request.Request(page.url, data=f"csrfmiddlewaretoken={token}&code={code}&next=/".encode(),
                                     headers={"Referer": page.url})
        dashboard = opener.open(req).read().decode()
        assert "Northwind General Hospital" in dashboard and "Organization admin" in dashboard
        assert "/static/css/lightbox.css" in dashboard
        assert opener.open(f"{base}/static/css/lightbox.css").status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the uvicorn it started
        proc.wait(timeout=10)
    # the demo's notices (printed by the console mail backend) link to the address served, port
    # included: without it they named http://localhost/, where nothing answers
    output = proc.stdout.read().decode(errors="replace")
    assert f"{base}/sharing/requests/" in output, output[-3000:]
    assert "http://localhost/" not in output
    assert (tmp_path / "lightbox.sqlite3").exists()
    assert settings.DATABASES  # the test process itself is untouched
