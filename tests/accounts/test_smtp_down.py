"""A real SMTP relay that cannot be reached (nothing listens on port 1): the pages that send mail
answer without a server error; an invitation nobody received is withdrawn with the reason."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Invitation
from apps.organizations.models import Role
from tests.accounts.test_invitations import case, radiologist  # noqa: F401 - the fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp_down(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 3


def test_an_invitation_sent_while_the_relay_is_down_is_withdrawn_with_a_reason(
    smtp_down,
    radiologist,  # noqa: F811 - the fixture imported above
    case,  # noqa: F811
    verified_client,
):
    client = verified_client(radiologist)
    client.raise_request_exception = False
    response = client.post(
        "/org/invitations/new/",
        {"email": "c@elsewhere.example", "role": Role.EXTERNAL_CONSULTANT, "cases": [case.pk], "language": "en"},
    )
    assert response.status_code == 400 and "could not be sent" in response.content.decode()
    assert Invitation.objects.get().revoked_at is not None


def test_a_password_reset_while_the_relay_is_down_answers_as_always(smtp_down, clinician_a):
    client = Client(raise_request_exception=False)
    assert client.post("/accounts/password/reset/", {"email": clinician_a.email}).status_code == 302
