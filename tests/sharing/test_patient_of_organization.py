"""A patient of an organization is given under its shares what a patient-education share gives and
nothing else (the education copy, on the patient portal), whatever they are elsewhere
(``policy._downloads_as_patient``, one rule in ``_grant_refusal``). Found by review: a patient of
Alpha who is also an invited consultant of Beta (so not kept to the portal by the access gate) was
sent a telehealth "view" share by an Alpha clinician and got the viewer (previews up to 1024 px)
and the case page; an account of no organization that accepted a patient-education share and was
later sent a second opinion got its viewer and its originals. Such shares are refused at the share
form too; a plain outside consultant is given what the share names, as before.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import InvitationKind
from apps.imaging.models import Study
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import GrantFactory, InvitationFactory, MembershipFactory, UserFactory, member
from tests.patient_links import link_patient_account
from tests.share_steps import confirmation
from tests.viewer.conftest import make_ct_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def ct_study(org_a, owner):
    return make_ct_study(org_a, owner)


def _patient_of_alpha_consultant_of_beta(org_a, org_b):
    patient = member(org_a, Role.PATIENT, email="pat@alpha.example")
    MembershipFactory(user=patient, organization=org_b, role=Role.EXTERNAL_CONSULTANT)
    return patient


def _no_organization_with_education_share(org_a, study, owner):
    """An account of no organization holding a patient-education share of Alpha addressed to it
    (as accepting one sent to its e-mail address binds it)."""
    patient = UserFactory(email="pat@home.example")
    GrantFactory(organization=org_a, case=study.case, grantee=patient, permissions=["download_preview"],
                 renditions=["education"], use_case=UseCase.PATIENT_EDUCATION, created_by=owner)
    return patient


def _invited_patient_whose_membership_ended(org_a, org_b):
    """An account made by a patient invitation of Alpha whose membership there ended since, now an
    invited consultant of Beta."""
    patient = member(org_b, Role.EXTERNAL_CONSULTANT, email="pat@invited.example")
    MembershipFactory(user=patient, organization=org_a, role=Role.PATIENT, is_active=False)
    InvitationFactory(organization=org_a, kind=InvitationKind.PATIENT, role=Role.PATIENT, email=patient.email,
                      accepted_at=timezone.now(), accepted_by=patient)
    return patient


_PATIENTS = {"patient_member_consulting_elsewhere": lambda org_a, org_b, study, owner:
             _patient_of_alpha_consultant_of_beta(org_a, org_b),
             "no_organization_education_share": lambda org_a, org_b, study, owner:
             _no_organization_with_education_share(org_a, study, owner),
             "patient_invitation_membership_ended": lambda org_a, org_b, study, owner:
             _invited_patient_whose_membership_ended(org_a, org_b)}


def _reads(client, study):
    frame = client.get(reverse("viewer:frame", kwargs={"instance_id": study.phantom_instances[0].public_id})
                       + "?quality=preview")
    return {
        "viewer": client.get(reverse("viewer:viewer", kwargs={"study_id": study.public_id})).status_code,
        "frame": frame.status_code,
        "frame_is_image": frame.get("Content-Type", "").startswith("image/"),
        "case_page": client.get(study.case.get_absolute_url()).status_code,
        "shared_case": client.get(reverse("sharing:shared_case", kwargs={"case_id": study.case.public_id})).status_code,
    }


@pytest.mark.parametrize("who", list(_PATIENTS))
@pytest.mark.parametrize(("use_case", "permissions"), [(UseCase.TELEHEALTH, ["view"]),
                                                       (UseCase.SECOND_OPINION, ["view", "download_original"])])
def test_a_patient_of_the_organization_gets_no_viewer_frames_nor_case_page(client_as, org_a, org_b, owner, ct_study,
                                                                           who, use_case, permissions):
    patient = _PATIENTS[who](org_a, org_b, ct_study, owner)
    grant = services.grant_create(case=ct_study.case, grantee=patient, permissions=permissions, by=owner,
                                  use_case=use_case, renditions=["original", "preview"],
                                  expires_at=timezone.now() + timedelta(hours=2))
    assert grant.is_live()
    reads = _reads(client_as(patient), ct_study)
    assert reads["viewer"] in (403, 404) and reads["frame"] in (403, 404) and not reads["frame_is_image"], reads
    assert reads["case_page"] in (403, 404) and reads["shared_case"] in (403, 404), reads
    for action in (Action.VIEW_CASE, Action.VIEW_IMAGES):
        assert not policy.can(patient, action, ct_study)
    assert not policy.can(patient, Action.DOWNLOAD_ORIGINAL, ct_study, rendition="original")
    assert not policy.can(patient, Action.DOWNLOAD_PREVIEW, ct_study, rendition="preview")
    # "Shared with me" and the study lists do not list what the share does not give them
    assert not Grant.objects.filter(pk=grant.pk, case_id__in=policy.granted_case_ids(patient)).exists()
    assert not Study.objects.filter(pk=ct_study.pk, id__in=policy.granted_study_ids(patient)).exists()


def test_a_plain_consultant_is_given_what_the_share_names(client_as, org_a, org_b, owner, ct_study):
    consultant = member(org_b, Role.EXTERNAL_CONSULTANT, email="consultant@beta.example")
    services.share_create(case=ct_study.case, by=owner, use_case=UseCase.TELEHEALTH,
                          recipient_kind=RecipientKind.USER, grantee=consultant)
    reads = _reads(client_as(consultant), ct_study)
    assert reads["viewer"] == 200 and reads["frame"] == 200 and reads["frame_is_image"], reads
    assert reads["shared_case"] == 200, reads
    assert policy.can(consultant, Action.VIEW_IMAGES, ct_study)


def test_the_patient_still_downloads_their_education_copy_under_a_patient_education_share(org_a, org_b, owner,
                                                                                          ct_study):
    patient = _patient_of_alpha_consultant_of_beta(org_a, org_b)
    link_patient_account(patient, ct_study.case.patient, case=ct_study.case)  # the case's patient's account
    services.share_create(case=ct_study.case, by=owner, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=patient)
    assert policy.can(patient, Action.DOWNLOAD_PREVIEW, ct_study, rendition="education")
    assert not policy.can(patient, Action.VIEW_IMAGES, ct_study)


def _share_url(case):
    return reverse("sharing:case_share", kwargs={"case_id": case.public_id})


@pytest.mark.parametrize("who", list(_PATIENTS))
def test_the_share_form_refuses_another_template_to_a_patient_of_the_organization(client_as, org_a, org_b, owner,
                                                                                   ct_study, who):
    patient = _PATIENTS[who](org_a, org_b, ct_study, owner)
    before = Grant.objects.count()
    client = client_as(owner)
    form = {"use_case": UseCase.TELEHEALTH, "recipient_kind": RecipientKind.USER, "recipient_email": patient.email}
    review = client.post(_share_url(ct_study.case), form)
    assert review.status_code == 400
    page = review.content.decode()
    assert "is a patient of this organization" in page and 'name="confirm"' not in page
    assert client.post(_share_url(ct_study.case), {**form, **confirmation(client)}).status_code == 400
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=ct_study.case, by=owner, use_case=UseCase.SECOND_OPINION,
                              recipient_kind=RecipientKind.USER, grantee=patient)
    assert refused.value.code == "recipient_email"
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=ct_study.case, by=owner, use_case=UseCase.SECOND_OPINION,
                              recipient_kind=RecipientKind.EMAIL, grantee_email=patient.email)
    assert refused.value.code == "recipient_email"
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=ct_study.case, by=owner, use_case=UseCase.TUMOR_BOARD,
                              recipient_kind=RecipientKind.GROUP,
                              group_members=[member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"), patient])
    assert refused.value.code == "group_emails" and patient.email in " ".join(refused.value.messages)
    assert Grant.objects.count() == before


def test_the_share_form_still_shares_with_a_consultant_and_an_education_share_with_the_patient(
        client_as, org_a, org_b, owner, ct_study):
    consultant = member(org_b, Role.EXTERNAL_CONSULTANT, email="consultant@beta.example")
    patient = _patient_of_alpha_consultant_of_beta(org_a, org_b)
    link_patient_account(patient, ct_study.case.patient, case=ct_study.case)  # the case's patient's account
    client = client_as(owner)
    for person, use_case in ((consultant, UseCase.SECOND_OPINION), (patient, UseCase.PATIENT_EDUCATION)):
        review = client.post(_share_url(ct_study.case), {"use_case": use_case, "recipient_kind": RecipientKind.USER,
                                                         "recipient_email": person.email})
        assert review.status_code == 200 and 'name="confirm"' in review.content.decode()
        services.share_create(case=ct_study.case, by=owner, use_case=use_case, recipient_kind=RecipientKind.USER,
                              grantee=person)
    assert Grant.objects.filter(grantee__in=[consultant, patient]).count() == 2


def test_a_revoked_education_share_sent_to_the_wrong_person_makes_nobody_a_patient(org_a, org_b, owner, ct_study):
    consultant = member(org_b, Role.EXTERNAL_CONSULTANT, email="consultant@beta.example")
    GrantFactory(organization=org_a, case=ct_study.case, grantee=consultant, permissions=["download_preview"],
                 renditions=["education"], use_case=UseCase.PATIENT_EDUCATION, revoked_at=timezone.now())
    services.share_create(case=ct_study.case, by=owner, use_case=UseCase.TELEHEALTH,
                          recipient_kind=RecipientKind.USER, grantee=consultant)
    assert policy.can(consultant, Action.VIEW_IMAGES, ct_study)
