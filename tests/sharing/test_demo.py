from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.sharing.models import Grant

pytestmark = pytest.mark.django_db


def test_seed_demo_shares_show_states_and_are_idempotent():
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    consultant = User.objects.get(email="consultant@northwind.example")
    grants = list(Grant.objects.filter(grantee=consultant))
    assert sorted(g.state() for g in grants) == ["active", "expired_unused"]
    live = next(g for g in grants if g.state() == "active")
    assert live.use_case == "second_opinion" and live.links.count() == 1
    clinician = Client()
    clinician.force_login(User.objects.get(email="clinician@northwind.example"))
    page = clinician.get(reverse("sharing:my_shares")).content.decode()
    assert "state-active" in page and "state-expired_unused" in page
    recipient = Client()
    recipient.force_login(consultant)
    received = recipient.get(reverse("sharing:shared_with_me")).content.decode()
    assert live.case.title in received
    assert recipient.get(reverse("sharing:shared_case", kwargs={"case_id": live.case.public_id})).status_code == 200


def test_seed_demo_gives_the_demo_patient_a_patient_education_share_on_the_portal():
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    patient = User.objects.get(email="patient@northwind.example")
    [grant] = Grant.objects.filter(grantee=patient)
    assert grant.use_case == "patient_education" and grant.renditions == ["education"]
    assert grant.links.count() == 1
    client = Client()
    client.force_login(patient)
    page = client.get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-share"' in page and 'data-testid="portal-empty"' not in page
    # the education copy is made after the seed commits (renditions task): ready or being prepared
    assert 'data-testid="education-download"' in page or 'data-testid="education-preparing"' in page
