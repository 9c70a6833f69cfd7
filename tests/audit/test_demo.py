"""The demo's events form intact chains: verify_audit passes after seed_demo and
after a demo user signs in and opens the case list."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_verify_audit_passes_after_seed_demo(verify_audit):
    call_command("seed_demo", stdout=io.StringIO())
    before = AuditEvent.objects.count()
    client = Client()
    client.post(reverse("account_login"), {"login": "clinician@northwind.example", "password": "lightbox-demo"})
    client.get(reverse("cases:case_list"))
    assert AuditEvent.objects.count() > before  # at least the sign-in
    code, out = verify_audit()
    assert code == 0, out
    assert f"{AuditEvent.objects.count()} events" in out
