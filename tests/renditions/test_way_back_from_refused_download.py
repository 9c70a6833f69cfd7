"""The page of a download refused for now (409 "Still being prepared", 404 "Not available") offered
"Back to the study" to anyone signed in (found by review of 23e05b4): a patient downloading the
education copy while it was made was sent to a study page that refuses them. Its way back is the
policy's now (``policy.way_back``): the study's (or case's) page only for who may open it; else the
shared case's page a link led to, the patient portal for a patient; nothing to go back to is
offered as such."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from apps.renditions.models import Kind, Label, Rendition, Status
from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import member
from tests.patient_links import link_patient_account
from tests.renditions.test_being_made_not_downloaded import _case_url, _study_url, unmade  # noqa: F401 - a fixture
from tests.renditions.test_resume import Share

pytestmark = pytest.mark.django_db


def _way_back(response) -> str | None:
    found = re.search(r'<a href="([^"]+)" data-testid="way-back">', response.content.decode())
    return found.group(1) if found else None


def test_a_patient_is_sent_back_to_the_portal_not_to_a_study_page_refusing_them(unmade, org_a, client_as):  # noqa: F811
    owner = member(org_a, Role.CLINICIAN)
    patient = member(org_a, Role.PATIENT, email="pat@alpha.example")
    link_patient_account(patient, unmade.case.patient, case=unmade.case)  # the case's patient's account
    services.share_create(case=unmade.case, by=owner, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=patient)
    client = client_as(patient)
    response = client.get(_study_url(unmade, Kind.EDUCATION))
    assert response.status_code == 409, response.status_code
    assert f'href="{unmade.get_absolute_url()}"' not in response.content.decode()
    assert client.get(unmade.get_absolute_url()).status_code in (403, 404)  # the page it offered
    back = _way_back(response)
    assert back == reverse("education:portal")
    assert client.get(back).status_code == 200


def test_staff_who_may_see_the_study_go_back_to_it(unmade, clinician_a, client_as):  # noqa: F811
    client = client_as(clinician_a)
    response = client.get(_study_url(unmade, Kind.PREVIEW))
    assert response.status_code == 409
    assert _way_back(response) == unmade.get_absolute_url()
    response = client.get(_case_url(unmade.case, Kind.PREVIEW))
    assert response.status_code == 409
    assert _way_back(response) == unmade.case.get_absolute_url()


def test_a_link_holder_goes_back_to_the_shared_case_the_link_opened(unmade, clinician_a):  # noqa: F811
    share = Share(unmade, clinician_a, "link_holder")
    response = share.client.get(_study_url(unmade, Kind.PREVIEW))
    assert response.status_code == 409
    back = _way_back(response)
    assert back == reverse("sharing:shared_case", kwargs={"case_id": unmade.case.public_id})
    assert share.client.get(back).status_code == 200


def test_a_patient_refused_a_rendition_not_available_is_not_sent_to_the_study_page(unmade, org_a, client_as):  # noqa: F811
    owner = member(org_a, Role.CLINICIAN)
    patient = member(org_a, Role.PATIENT, email="pat@alpha.example")
    link_patient_account(patient, unmade.case.patient, case=unmade.case)  # the case's patient's account
    services.share_create(case=unmade.case, by=owner, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=patient)
    Rendition.objects.create(organization=org_a, study=unmade, kind=Kind.EDUCATION, label=Label.EDUCATION_LOW_RES,
                             status=Status.UNAVAILABLE)
    response = client_as(patient).get(_study_url(unmade, Kind.EDUCATION))
    assert response.status_code == 404 and 'data-testid="rendition-not-available"' in response.content.decode()
    assert f'href="{unmade.get_absolute_url()}"' not in response.content.decode()
    assert _way_back(response) == reverse("education:portal")
