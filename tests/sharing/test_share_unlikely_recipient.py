"""The share review speaks up about shares that are unlikely to be meant (found by QA):

- a patient-education share to someone who works for the case's organization (a radiologist) was
  accepted as "A patient, signed in (the education copy)": it is refused (their role gives them the
  case already; the share is for the patient), beside the recipient, at the review and by the
  service;
- seven live shares of one case to one person were made without a word: the review now says which
  live shares of the case the person holds already (use case, expiry) and offers Extend of them,
  asking to confirm; a second share is not blocked.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import Grant
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import member
from tests.patient_links import link_patient_account
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db


def _share_url(case):
    return reverse("sharing:case_share", kwargs={"case_id": case.public_id})


@pytest.mark.parametrize("kind", [RecipientKind.USER, RecipientKind.EMAIL])
def test_a_patient_education_share_to_staff_of_the_organization_is_refused(client_as, case, owner, radiologist,
                                                                           kind):
    client = client_as(owner)
    form = {"use_case": UseCase.PATIENT_EDUCATION, "recipient_kind": kind, "recipient_email": radiologist.email}
    review = client.post(_share_url(case), form)
    assert review.status_code == 400
    page = review.content.decode()
    assert "sees the case through their role already" in page and 'name="confirm"' not in page
    assert client.post(_share_url(case), {**form, **confirmation(client)}).status_code == 400
    assert not Grant.objects.exists()
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=case, by=owner, use_case=UseCase.PATIENT_EDUCATION, recipient_kind=kind,
                              grantee=radiologist if kind == RecipientKind.USER else None,
                              grantee_email=radiologist.email if kind == RecipientKind.EMAIL else "")
    assert refused.value.code == "recipient_email"
    assert not Grant.objects.exists()


def test_a_patient_education_share_still_goes_to_a_patient(client_as, case, owner, org_a):
    patient = member(org_a, Role.PATIENT, email="patient@alpha.example")
    link_patient_account(patient, case.patient, case=case)  # the case's patient's account
    client = client_as(owner)
    form = {"use_case": UseCase.PATIENT_EDUCATION, "recipient_kind": RecipientKind.USER,
            "recipient_email": patient.email}
    review = client.post(_share_url(case), form)
    assert review.status_code == 200 and 'name="confirm"' in review.content.decode()
    services.share_create(case=case, by=owner, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=patient)
    assert Grant.objects.filter(grantee=patient).exists()


def test_the_review_names_the_live_shares_the_person_holds_and_asks_to_confirm(client_as, case, owner,
                                                                               radiologist, consultant):
    held, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                              recipient_kind=RecipientKind.USER, grantee=radiologist, hours=24)
    ended, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.TELEHEALTH,
                                               recipient_kind=RecipientKind.USER, grantee=radiologist)
    services.grants_revoke(grants=[ended], by=owner, reason="revoked by sharer")
    client = client_as(owner)
    form = {"use_case": UseCase.CUSTOM, "recipient_kind": RecipientKind.USER, "recipient_email": radiologist.email}
    review = client.post(_share_url(case), form)
    assert review.status_code == 200
    page = review.content.decode()
    assert 'data-testid="existing-shares"' in page
    assert "This person already has a live share of this case" in page
    row = re.search(rf'data-testid="existing-share-{held.public_id}">(.*?)</li>', page).group(1)
    assert "Radiology second opinion" in row and timezone.localtime(held.expires_at).strftime("%Y-%m-%d %H:%M") in row
    assert reverse("sharing:grant_extend", kwargs={"grant_id": held.public_id}) in row
    assert f"existing-share-{ended.public_id}" not in page  # revoked: not live
    # not blocked: confirming makes the second share
    token = re.search(r'name="confirm_token" value="([^"]+)"', page).group(1)
    assert client.post(_share_url(case), {**form, "confirm": "1", "confirm_token": token}).status_code == 200
    assert Grant.objects.filter(grantee=radiologist, revoked_at__isnull=True).count() == 2
    # someone else holds none of them: nothing said
    other = client.post(_share_url(case), {**form, "recipient_email": consultant.email}).content.decode()
    assert 'data-testid="existing-shares"' not in other


def test_an_expired_share_is_not_named_and_many_are_counted(client_as, case, owner, radiologist):
    old, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                             recipient_kind=RecipientKind.USER, grantee=radiologist)
    Grant.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client = client_as(owner)
    form = {"use_case": UseCase.SECOND_OPINION, "recipient_kind": RecipientKind.USER,
            "recipient_email": radiologist.email}
    assert 'data-testid="existing-shares"' not in client.post(_share_url(case), form).content.decode()
    for _ in range(7):
        services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                              recipient_kind=RecipientKind.USER, grantee=radiologist)
    page = client.post(_share_url(case), form).content.decode()
    assert "This person already has 7 live shares of this case" in page
    assert "and 2 more" in page
