"""One pending invitation per address in an organization. Sending the invitation form twice for
the same address made two pending invitations, two e-mails and two working links; the second is
refused, saying until when the first works and that it may be withdrawn to send a new one."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import formats, timezone

from apps.accounts import services
from apps.accounts.models import Invitation
from apps.organizations.models import Role
from tests.conftest import mail_patient_leaks
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

ADDRESS = "ext.one@stmarys.example"


@pytest.fixture
def radiologist(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


def test_sending_the_invitation_form_again_makes_no_second_invitation(org_a, radiologist, verified_client):
    case = CaseFactory(organization=org_a, created_by=radiologist)
    client = verified_client(radiologist)
    form = {"email": ADDRESS, "role": Role.EXTERNAL_CONSULTANT, "cases": [case.pk], "language": "en"}
    assert client.post("/org/invitations/new/", form).status_code == 302
    first = Invitation.objects.get()
    again = client.post("/org/invitations/new/", {**form, "email": ADDRESS.upper()})
    assert again.status_code == 400
    expires = formats.date_format(timezone.localtime(first.expires_at), "SHORT_DATETIME_FORMAT")
    # (a radiologist manages no members: told of their own invitation, which they may withdraw)
    assert (f"You already invited {ADDRESS}; your invitation is waiting to be accepted and works until "
            f"{expires}." in again.content.decode())
    assert Invitation.objects.count() == 1 and len(mail.outbox) == 1
    assert mail_patient_leaks(mail.outbox) == []

    # withdrawn, a new one may be sent
    assert client.post(f"/org/invitations/{first.public_id}/revoke/").status_code == 302
    assert client.post("/org/invitations/new/", form).status_code == 302
    assert Invitation.objects.count() == 2 and len(mail.outbox) == 2


def test_an_expired_invitation_or_another_organizations_does_not_stop_a_new_one(org_a, org_b,
                                                                                           radiologist):
    admin_b = member(org_b, Role.ORG_ADMIN, email="admin@beta.example")
    services.invitation_create(organization=org_b, by=admin_b, email=ADDRESS, role=Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, created_by=radiologist)
    invitation, _raw = services.invitation_create(organization=org_a, by=radiologist, email=ADDRESS,
                                                  role=Role.EXTERNAL_CONSULTANT, cases=[case])
    with pytest.raises(ValidationError) as refused:
        services.invitation_create(organization=org_a, by=radiologist, email=ADDRESS,
                                   role=Role.EXTERNAL_CONSULTANT, cases=[case])
    assert refused.value.code == "pending"
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
    services.invitation_create(organization=org_a, by=radiologist, email=ADDRESS, role=Role.EXTERNAL_CONSULTANT,
                               cases=[case])
    assert Invitation.objects.for_org(org_a.pk).count() == 2
