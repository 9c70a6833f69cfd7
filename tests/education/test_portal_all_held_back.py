"""A patient-education share every study of which is held back from its patient (their images'
patient ID is not the case's MRN, or they carry none: ``policy.held_back_from_patient``) does not
tell the patient "Your copy is being prepared": nothing is, until the care team corrects the
images' patient details. The portal says the care team is checking the images and whom to ask
(the organization), and still nothing of the studies themselves (``policy.grants_held_back_entirely``,
on the same rule). A share giving the patient some of its studies is shown as before, and a copy
still being made is still "being prepared"."""

from __future__ import annotations

import html as html_lib

import pytest
from django.urls import reverse

from apps.imaging.models import Study
from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

HELD_BACK = [pytest.param("OTHER-0002", id="other_patient"), pytest.param("", id="no_patient_id")]
CHECKING = ("Your care team is checking these images before they can be shown here. "
            "If you have questions, please contact Alpha Hospital.")


def _portal(client_as, patient) -> str:
    response = client_as(patient).get(reverse("education:portal"))
    assert response.status_code == 200
    return html_lib.unescape(response.content.decode())


@pytest.mark.parametrize("patient_id", HELD_BACK)
def test_every_study_held_back_says_the_care_team_checks_them(edu_study, edu_share, patient, client_as,
                                                              patient_id):
    Study.objects.filter(pk=edu_study.pk).update(patient_id=patient_id)
    html = _portal(client_as, patient)
    assert 'data-testid="education-share"' in html
    assert 'data-testid="education-held-back"' in html and CHECKING in html
    assert 'data-testid="education-preparing"' not in html and "being prepared" not in html
    # still nothing of the study itself: not listed, not named, no count, no patient ID
    assert 'data-testid="education-study"' not in html and "CT chest (education test)" not in html
    assert "patient ID" not in html and "OTHER-0002" not in html and "SYN-0001" not in html
    # nor the lines that explain copies it does not show (QA: "small, simplified copies of a few of your
    # images" above the care team's message, with no image)
    assert 'data-testid="education-explained"' not in html and "simplified copies" not in html


@pytest.mark.parametrize("patient_id", HELD_BACK)
def test_a_share_naming_only_held_back_studies_says_so_too(org_a, edu_case, edu_study, sharer, patient, client_as,
                                                           patient_id):
    own = StudyFactory(organization=org_a, case=edu_case, study_description="MR knee")
    held = StudyFactory(organization=org_a, case=edu_case, patient_id=patient_id, study_description="Foreign MR")
    services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=patient, studies=[held])
    html = _portal(client_as, patient)
    assert html.count('data-testid="education-share"') == 1
    assert 'data-testid="education-held-back"' in html and 'data-testid="education-preparing"' not in html
    assert "Foreign MR" not in html and own.study_description not in html


def test_some_held_back_and_some_ready_is_shown_as_before(org_a, edu_case, edu_study, edu_share, patient,
                                                          client_as):
    StudyFactory(organization=org_a, case=edu_case, patient_id="OTHER-0002", study_description="Foreign MR")
    html = _portal(client_as, patient)
    assert html.count('data-testid="education-study"') == 1 and "CT chest (education test)" in html
    assert 'data-testid="education-download"' in html and 'data-testid="education-explained"' in html
    assert "Foreign MR" not in html
    assert 'data-testid="education-held-back"' not in html and 'data-testid="education-preparing"' not in html


def test_a_study_of_the_patient_still_being_made_is_being_prepared(org_a, edu_case, edu_study, edu_share, patient,
                                                                   client_as):
    """The ready study is held back, another of the patient's own is still being processed: a
    copy is genuinely being prepared."""
    Study.objects.filter(pk=edu_study.pk).update(patient_id="OTHER-0002")
    StudyFactory(organization=org_a, case=edu_case, state="processing", study_description="MR knee")
    html = _portal(client_as, patient)
    assert 'data-testid="education-preparing"' in html
    assert 'data-testid="education-held-back"' not in html


def test_a_case_with_no_study_yet_is_being_prepared(edu_case, edu_share, patient, client_as):
    html = _portal(client_as, patient)
    assert 'data-testid="education-preparing"' in html and 'data-testid="education-held-back"' not in html

