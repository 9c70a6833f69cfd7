"""Pressing "Create account" twice on an invitation: the two submits check for an account with the
address at once, find none, and both insert one; the database refuses the later insert. That
submit's answer is the page asking the person to sign in with the account just made (a server
error before: found by a reviewer), and nothing else was written by it."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client

from apps.accounts import services
from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.organizations.models import Role

pytestmark = pytest.mark.django_db

PASSWORD = "Very-long-pass-123"


def test_the_later_of_two_submits_is_asked_to_sign_in(org_a, admin_a):
    invitation, raw = services.invitation_create(organization=org_a, by=admin_a, email="new@ext.example",
                                                 role=Role.RADIOLOGIST)
    # the other submit (a double click) made the account a moment before this one's insert
    first = User.objects.create_user(email="new@ext.example", password="x" * 14)
    real_filter = User.objects.filter

    def before_the_other_commit(*args, **kwargs):  # this submit's checks ran before the other's insert
        if kwargs == {"email": "new@ext.example"}:
            return real_filter(pk=-1)
        return real_filter(*args, **kwargs)

    client = Client(raise_request_exception=False)
    with mock.patch.object(User.objects, "filter", side_effect=before_the_other_commit):
        response = client.post(f"/invite/{raw}/", {"step": "account", "full_name": "N", "password1": PASSWORD,
                                                   "password2": PASSWORD})
    assert response.status_code == 409
    page = response.content.decode()
    assert "Sign in to accept" in page and "An account for new@ext.example exists" in page
    assert "/accounts/login/?next=" in page
    assert list(User.objects.filter(email="new@ext.example")) == [first]  # nothing more made
    assert not User.objects.get(pk=first.pk).check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="account.created").exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None  # accepted once they sign in
    assert "_auth_user_id" not in client.session


def test_the_service_refuses_the_insert_the_database_refuses(org_a, admin_a):
    """Without the page: the refusal the view reads (its code), not the database's error, and the
    transaction it ran in is still usable (PostgreSQL aborts one at an error otherwise)."""
    from django.core.exceptions import ValidationError
    from django.db import transaction

    invitation, _raw = services.invitation_create(organization=org_a, by=admin_a, email="new@ext.example",
                                                  role=Role.RADIOLOGIST)
    User.objects.create_user(email="new@ext.example", password="x" * 14)
    real_filter = User.objects.filter
    with transaction.atomic():
        with mock.patch.object(User.objects, "filter",
                               side_effect=lambda *a, **k: real_filter(pk=-1) if k == {"email": "new@ext.example"}
                               else real_filter(*a, **k)):
            with pytest.raises(ValidationError) as refused:
                services.account_create_for_invitation(invitation=invitation, full_name="N", password=PASSWORD)
        assert refused.value.code == services.ACCOUNT_EXISTS
        assert User.objects.filter(email="new@ext.example").count() == 1  # the transaction goes on
