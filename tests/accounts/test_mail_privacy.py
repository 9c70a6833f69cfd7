"""E-mail is a notification layer: with the demo loaded, the invitation, patient-invitation,
password-reset and share mails name no demo patient, record number, birth date, case title or
study description (tests/conftest.py also checks every mail of every test against the patients
in its database)."""

from __future__ import annotations

import io

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from apps.accounts import services
from apps.cases.models import Case, Patient
from apps.organizations.models import Organization, Role
from tests.accounts.conftest import enrol, totp_code
from tests.conftest import mail_patient_leaks
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db


def test_no_mail_carries_demo_patient_data(settings):
    call_command("seed_demo", stdout=io.StringIO())
    org = Organization.objects.get(slug="northwind")
    radiologist = org.memberships.get(role=Role.RADIOLOGIST, user__email__startswith="radiologist@").user
    cases = list(Case.objects.filter(organization=org))
    patients = list(Patient.objects.filter(organization=org))
    assert cases and patients
    mail.outbox.clear()

    # a consultant invitation naming every demo case, sent from the page
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=radiologist, confirmed=True).first() or enrol(radiologist)
    client = Client()
    client.force_login(radiologist)
    client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})
    open_cases = [c for c in cases if c.is_open]
    response = client.post("/org/invitations/new/", {"email": "guest@consult.example", "role": Role.EXTERNAL_CONSULTANT,
                                                     "cases": [c.pk for c in open_cases]})
    assert response.status_code == 302, response.content[:300]
    # a patient invitation for every demo patient with a recorded birth date
    for case in open_cases:
        response = client.post(f"/cases/{case.public_id}/invite-patient/", {"email": f"p{case.pk}@home.example"})
        assert response.status_code == 302
    for patient in patients:
        for case in Case.objects.filter(patient=patient)[:1]:  # a patient is invited from a case of theirs
            services.invitation_create(organization=org, by=radiologist, email=f"pt{patient.pk}@home.example",
                                       role=Role.PATIENT, patient=patient, case=case)
    # a password reset
    Client().post("/accounts/password/reset/", {"email": "patient@northwind.example"})
    # a share to an e-mail address (the sharing app's notification mails)
    client.post(f"/sharing/cases/{open_cases[0].public_id}/share/", {
        "use_case": "second_opinion", "recipient_kind": "email", "recipient_email": "x@consult.example",
        **confirmation(client)})

    assert len(mail.outbox) >= 2 + len(patients)
    assert mail_patient_leaks(mail.outbox) == []
    forbidden = {c.title for c in cases}
    try:
        from apps.imaging.models import Study

        forbidden |= {d for d in Study.objects.values_list("study_description", flat=True) if d}
    except ImportError:  # pragma: no cover
        pass
    for message in mail.outbox:
        text = "\n".join([message.subject, message.body] + [str(c) for c, _ in message.alternatives])
        assert not [f for f in forbidden if f in text], message.subject
        assert "<img" not in text and not message.attachments
