"""The password reset pages (linked from the sign-in form, for everyone): they say whom to ask when
the e-mail does not come, never allauth's "contact us" (nobody answers for Lightbox)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_the_reset_pages_send_the_reader_to_their_organizations_admin(org_a, client):
    user = member(org_a, Role.CLINICIAN, email="forgot@alpha.example")
    page = client.get(reverse("account_reset_password"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "contact us" not in page
    assert 'data-testid="reset-help"' in page and "Ask your organization's admin" in page
    assert 'class="primary">Send the link</button>' in page
    response = client.post(reverse("account_reset_password"), {"email": user.email}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    done = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "contact us" not in done
    assert 'data-testid="reset-sent"' in done and "Ask your organization's admin" in done
    assert len(mail.outbox) == 1
