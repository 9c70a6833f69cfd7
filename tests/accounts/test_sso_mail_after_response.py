"""Where tasks run eagerly (the embedded default, no broker), the e-mail "Sign in with your
organization" sends a staff address is sent once the response has been sent, not inside the
request, whose time would tell a staff address from any other (found by review);
apps.core.queue ``eager_after_response``, apps.core.middleware.AfterResponseMiddleware."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, RequestFactory

from apps.accounts.models import SSOConfig
from apps.organizations.models import Role
from tests.factories import member


@pytest.fixture
def alpha_sso(org_a, admin_a):
    return SSOConfig.objects.create(organization=org_a, issuer="https://idp.alpha.example/realms/staff",
                                    client_id="x", allowed_domains="alpha.example", enabled=True)


@pytest.mark.django_db(transaction=True)  # the request commits for real: its on_commit runs in it
def test_eager_tasks_send_the_e_mail_once_the_response_has_been_sent(alpha_sso, settings):
    """As a WSGI server does: call the application, read the whole response, then close it. The
    e-mail is not sent while the response is being made, and is sent once it is closed."""
    assert settings.CELERY_TASK_ALWAYS_EAGER
    member(alpha_sso.organization, Role.CLINICIAN, email="sam@alpha.example")
    page = Client()
    form = page.get("/accounts/sso/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode()).group(1)
    environ = RequestFactory().post("/accounts/sso/", {"email": "sam@alpha.example", "csrfmiddlewaretoken": token},
                                    REMOTE_ADDR="203.0.113.3",
                                    HTTP_COOKIE=f"csrftoken={page.cookies['csrftoken'].value}").environ
    statuses = []
    response = WSGIHandler()(environ, lambda status, headers, *exc: statuses.append(status))
    body = b"".join(response)
    assert statuses == ["200 OK"] and b'data-testid="sso-start-sent"' in body
    assert mail.outbox == []  # the whole answer made and read: nothing sent yet
    response.close()  # the server has sent it
    assert [m.to for m in mail.outbox] == [["sam@alpha.example"]]
    assert re.search(r"/accounts/sso/continue/\S+/", mail.outbox[0].body)


@pytest.mark.django_db(transaction=True)
def test_outside_a_request_the_eager_task_runs_at_once(alpha_sso):
    from apps.accounts.tasks import sso_link_send_task
    from apps.core.queue import send_on_commit

    sam = member(alpha_sso.organization, Role.CLINICIAN, email="sam@alpha.example")
    send_on_commit(sso_link_send_task, sam.pk, alpha_sso.pk)
    assert [m.to for m in mail.outbox] == [["sam@alpha.example"]]
