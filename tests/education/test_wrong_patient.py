"""A patient-education share gives its case's images only to the case's patient: the portal account
their accepted patient invitation linked to them (``policy.is_case_patients_account``), read live at
each decision. Found by QA on the demo: Quinn's case was shared by "A named person" with
patient@northwind.example (Pat, another patient); the review said nothing and Pat's portal listed and
downloaded Quinn's studies, the policy comparing only the images' patient ID with the case's MRN.

Now the form refuses any other recipient (``services.share_recipient_check``), and a share made
before to the wrong patient gives them nothing: their portal shows nothing of it, its download is
refused, and the case's "Who has access" says why. The right patient is given their copy as before."""

from __future__ import annotations

import html as html_lib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.cases.templatetags.cases_tags import held_back_reason
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.usecases import TEMPLATES, RecipientKind, UseCase
from tests.factories import InvitationFactory, PatientFactory, member
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db

REFUSED = services.PATIENT_EDUCATION_NOT_THE_PATIENT


@pytest.fixture
def other_patient(org_a):
    """Another patient of the organization with a portal account of their own, linked to them."""
    user = member(org_a, Role.PATIENT, email="other.patient@alpha.example", full_name="Quill Otherperson")
    link_patient_account(user, PatientFactory(organization=org_a, mrn="OTHER-0001"))
    return user


def _made_before(case, sharer, grantee) -> Grant:
    """A patient-education share to ``grantee`` as one made before the form refused them."""
    template = TEMPLATES[UseCase.PATIENT_EDUCATION]
    return services.grant_create(case=case, grantee=grantee, permissions=template.permissions, by=sharer,
                                 renditions=template.renditions, use_case=UseCase.PATIENT_EDUCATION,
                                 expires_at=timezone.now() + timedelta(days=7))


def _download_url(study) -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + "?rendition=education"


def test_the_share_form_refuses_another_patients_account(edu_case, sharer, other_patient, client_as):
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                              recipient_kind=RecipientKind.USER, grantee=other_patient)
    assert refused.value.code == "recipient_email" and refused.value.messages == [REFUSED]
    assert not Grant.objects.filter(grantee=other_patient).exists()
    # the share page's review says it beside the recipient, before anything is created
    response = client_as(sharer).post(
        reverse("sharing:case_share", kwargs={"case_id": edu_case.public_id}),
        {"use_case": UseCase.PATIENT_EDUCATION, "recipient_kind": RecipientKind.USER,
         "recipient_email": other_patient.email, "hours": 24 * 7, "renditions": ["education"]})
    assert response.status_code in (200, 400)
    assert html_lib.escape(REFUSED) in response.content.decode() or REFUSED in html_lib.unescape(
        response.content.decode())
    assert not Grant.objects.filter(grantee=other_patient).exists()


@pytest.mark.parametrize("address", ["other.patient@alpha.example", "nobody.yet@elsewhere.example"])
def test_the_share_form_refuses_an_address_that_is_not_the_case_patients(edu_case, sharer, other_patient,
                                                                          address):
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                              recipient_kind=RecipientKind.EMAIL, grantee_email=address)
    assert refused.value.messages == [REFUSED]


def test_an_address_the_case_patient_was_invited_at_is_taken(org_a, edu_case, sharer):
    InvitationFactory(organization=org_a, kind="patient", role=Role.PATIENT, email="invited.pt@elsewhere.example",
                      patient=edu_case.patient, case=edu_case)
    grant, _link, _raw = services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                                               recipient_kind=RecipientKind.EMAIL,
                                               grantee_email="invited.pt@elsewhere.example")
    assert grant.grantee_email == "invited.pt@elsewhere.example"


def test_a_share_made_before_to_another_patient_gives_them_nothing(edu_case, edu_study, sharer, other_patient,
                                                                    client_as):
    grant = _made_before(edu_case, sharer, other_patient)
    client = client_as(other_patient)
    page = client.get(reverse("education:portal"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="education-share"' not in html and 'data-testid="portal-empty"' in html
    assert "CT chest (education test)" not in html and edu_case.title not in html
    response = client.get(_download_url(edu_study))
    assert response.status_code in (403, 404)
    assert not getattr(response, "streaming", False)
    assert not policy.can(other_patient, Action.DOWNLOAD_PREVIEW, edu_study, rendition="education")
    assert not policy.can(other_patient, Action.VIEW_IMAGES, edu_study)
    grant.refresh_from_db()
    assert grant.download_count == 0
    # the case's "who has access" says that it gives them nothing, and why
    [why] = policy.grants_held_back_entirely([grant])
    assert why == (policy.NOT_THE_PATIENT,)
    assert "not this case's patient's" in held_back_reason(why)
    case_page = html_lib.unescape(client_as(sharer).get(
        reverse("cases:case_detail", kwargs={"case_id": edu_case.public_id})).content.decode())
    assert "not this case's patient's" in case_page


def test_the_case_patients_own_account_is_given_their_copy(edu_case, edu_study, edu_share, patient,
                                                          other_patient, client_as):
    _made_before(edu_case, edu_share[0].created_by, other_patient)
    client = client_as(patient)
    html = client.get(reverse("education:portal")).content.decode()
    assert html.count('data-testid="education-share"') == 1 and "CT chest (education test)" in html
    response = client.get(_download_url(edu_study))
    assert response.status_code == 200 and response.streaming
    assert policy.can(patient, Action.DOWNLOAD_PREVIEW, edu_study, rendition="education")
    assert policy.grants_held_back_entirely([edu_share[0]]) == [()]


def test_the_link_is_read_live(edu_case, edu_study, sharer, other_patient, client_as):
    """Linked to the case's patient later (their invitation accepted): the share then gives them."""
    _made_before(edu_case, sharer, other_patient)
    assert not policy.can(other_patient, Action.DOWNLOAD_PREVIEW, edu_study, rendition="education")
    link_patient_account(other_patient, edu_case.patient, case=edu_case)
    assert policy.can(other_patient, Action.DOWNLOAD_PREVIEW, edu_study, rendition="education")
