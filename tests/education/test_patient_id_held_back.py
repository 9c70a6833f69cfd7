"""A patient is never given a study whose images carry another patient ID than their case's MRN,
or none (found by QA: the demo patient's portal offered the education copies of four studies the
staff case page flags as another patient's or of no patient ID). The policy decides it
(``policy.held_back_from_patient``, read live: the share below is made before the study's
patient ID is what it is), so the portal's list, its images, the zip and every decision the API
asks (``policy.can``, ``may_know``, ``download_refusals``) follow it. The MRN is compared by its
key (blanks around it and the case of its letters aside). Staff and outside consultants are not
concerned."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.education.selectors import education_shares_for
from apps.imaging.models import Study
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.policy import Action, GrantRefusal
from tests.factories import GrantFactory, member

pytestmark = pytest.mark.django_db

#: a patient ID of another patient, and none (blanks only)
HELD_BACK = [pytest.param("OTHER-0002", id="other_patient"), pytest.param("  ", id="no_patient_id")]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _download_url(study) -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + "?rendition=education"


def _set_patient_id(study, patient_id: str) -> Study:
    Study.objects.filter(pk=study.pk).update(patient_id=patient_id)
    return Study.objects.select_related("case").get(pk=study.pk)


@pytest.mark.parametrize("patient_id", HELD_BACK)
def test_the_portal_shows_nothing_of_a_study_of_another_or_no_patient_id(edu_study, edu_share, patient,
                                                                           patient_id):
    client = _client(patient)
    shown = client.get(reverse("education:portal")).content.decode()
    assert "CT chest (education test)" in shown and 'data-testid="education-download"' in shown
    assert "data:image/jpeg;base64," in shown
    _set_patient_id(edu_study, patient_id)  # after the share was made: the rule is read live
    page = client.get(reverse("education:portal"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="education-study"' not in html
    assert "CT chest (education test)" not in html
    assert str(edu_study.public_id) not in html
    assert "data:image/jpeg;base64," not in html  # none of its education images
    assert "patient ID" not in html  # nothing said of it either (no count, no reason)


@pytest.mark.parametrize("patient_id", HELD_BACK)
def test_its_education_zip_is_not_found_for_the_patient(edu_study, edu_share, patient, patient_id):
    client = _client(patient)
    study = _set_patient_id(edu_study, patient_id)
    response = client.get(_download_url(study))
    assert response.status_code == 404
    grant, _link, _raw = edu_share
    grant.refresh_from_db()
    assert grant.download_count == 0


@pytest.mark.parametrize("patient_id", HELD_BACK)
def test_every_decision_any_interface_asks_refuses_it(edu_study, edu_share, patient, patient_id):
    study = _set_patient_id(edu_study, patient_id)
    assert not policy.can(patient, Action.DOWNLOAD_PREVIEW, study, rendition="education")
    assert not policy.may_know(patient, study)
    assert policy.download_refusals(patient, [study], rendition="education") == [GrantRefusal.NO_ACCESS]
    # the case's education zip would hold it: refused while the case holds such a study
    assert not policy.can(patient, Action.DOWNLOAD_PREVIEW, study.case, rendition="education")
    (share,) = education_shares_for(user=patient)
    assert share.studies == []


def test_a_study_of_the_cases_mrn_written_otherwise_is_given(edu_study, edu_share, patient):
    study = _set_patient_id(edu_study, "  syn-0001 ")  # the MRN's key: blanks and letters' case aside
    assert policy.can(patient, Action.DOWNLOAD_PREVIEW, study, rendition="education")
    assert policy.can(patient, Action.DOWNLOAD_PREVIEW, study.case, rendition="education")
    response = _client(patient).get(_download_url(study))
    assert response.status_code == 200
    b"".join(response.streaming_content)
    (share,) = education_shares_for(user=patient)
    assert [s.study.pk for s in share.studies] == [study.pk]


@pytest.mark.parametrize("patient_id", HELD_BACK)
def test_a_patient_holding_any_other_share_does_not_see_it(org_a, edu_study, patient, patient_id):
    """Whatever a share to a patient account names, the patient's path keeps to the rule (and to
    what a patient-education share gives: never the viewer, ``policy._downloads_as_patient``)."""
    GrantFactory(organization=org_a, case=edu_study.case, grantee=patient, permissions=["view", "download_preview"])
    assert policy.can(patient, Action.DOWNLOAD_PREVIEW, edu_study, rendition="education")
    assert not policy.can(patient, Action.VIEW_IMAGES, edu_study)
    study = _set_patient_id(edu_study, patient_id)
    assert not policy.can(patient, Action.VIEW_IMAGES, study)
    assert not policy.can(patient, Action.DOWNLOAD_PREVIEW, study, rendition="education")


@pytest.mark.parametrize("patient_id", HELD_BACK)
def test_staff_and_consultants_still_see_it(org_a, edu_study, sharer, patient_id):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    GrantFactory(organization=org_a, case=edu_study.case, grantee=consultant, permissions=["view", "download_preview"])
    study = _set_patient_id(edu_study, patient_id)
    assert policy.can(consultant, Action.VIEW_IMAGES, study)
    assert policy.can(consultant, Action.DOWNLOAD_PREVIEW, study, rendition="preview")
    assert policy.can(sharer, Action.VIEW_IMAGES, study)
