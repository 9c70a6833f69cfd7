"""The case page's "Who has access" does not name a patient's share as giving the education copy
(or anything) when every study it covers is held back from its patient (their images' patient ID
is not the case's MRN, or they carry none: ``policy.held_back_from_patient``): the patient sees
nothing yet, and the staff are told so and why, to correct the images' patient details
(``policy.grants_held_back_entirely``, on the same rule). A share giving its patient some of its
studies, and anyone's but a patient's, are listed as before."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.cases.selectors import NO_PATIENT_ID, OTHER_PATIENT
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.services import grant_create
from apps.sharing.usecases import UseCase
from tests.factories import PatientFactory, StudyFactory, member
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db

MRN = "NW-0042"
EDUCATION = {"use_case": UseCase.PATIENT_EDUCATION, "permissions": ["view", "download_preview"],
             "renditions": ["education"]}
NOTHING_YET = "Nothing yet: every study of this share is held back from the patient."


def _text(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def _grant(case, by, **fields):
    fields.setdefault("expires_at", timezone.now() + timedelta(days=2))
    fields.setdefault("permissions", ["view", "download_preview", "download_original"])
    return grant_create(case=case, by=by, **fields)


def _access(client, case, email: str) -> str:
    html = client.get(reverse("cases:case_detail", args=[case.public_id])).content.decode()
    rows = re.findall(r'data-testid="participant">\s*<td>(.*?)</td>\s*'
                      r'<td data-testid="participant-access"[^>]*>(.*?)</td>', html, re.S)
    (access,) = [_text(a).replace("&#x27;", "'") for person, a in rows if email in _text(person)]
    return access


@pytest.fixture
def patient(org_a, mrn_case):
    """The case's patient's portal account, linked to them as their accepted invitation links it (a
    patient's share gives no other account anything: ``policy.is_case_patients_account``)."""
    user = member(org_a, Role.PATIENT, email="patient.quillon@alpha.example")
    link_patient_account(user, mrn_case.patient, case=mrn_case)
    return user


@pytest.fixture
def mrn_case(org_a, case):
    case.patient = PatientFactory(organization=org_a, mrn=MRN)
    case.save()
    return case


@pytest.mark.parametrize(("patient_ids", "why"), [
    pytest.param(["1CT1"], "The patient ID in their images differs from this case's MRN.", id="other_patient"),
    pytest.param([""], "Their images carry no patient ID.", id="no_patient_id"),
    pytest.param(["1CT1", " "], "The patient ID in their images differs from this case's MRN or is missing.",
                 id="both"),
])
def test_a_patients_share_of_held_back_studies_gives_nothing_yet_and_says_why(
        org_a, mrn_case, owner, patient, client_as, patient_ids, why):
    for pid in patient_ids:
        StudyFactory(organization=org_a, case=mrn_case, patient_id=pid)
    _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    access = _access(client_as(owner), mrn_case, patient.email)
    assert access.startswith(f"{NOTHING_YET} {why}"), access
    assert "Download the education copy" not in access
    assert "See the studies" in access  # the studies section flags them


def test_a_patients_share_with_some_of_their_own_studies_is_listed_as_before(org_a, mrn_case, owner, patient,
                                                                             client_as):
    StudyFactory(organization=org_a, case=mrn_case, patient_id="1CT1")
    StudyFactory(organization=org_a, case=mrn_case, patient_id=MRN)
    _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    assert _access(client_as(owner), mrn_case, patient.email) == "Download the education copy"


def test_a_share_naming_only_held_back_studies_gives_nothing_yet(org_a, mrn_case, owner, patient, client_as):
    held = StudyFactory(organization=org_a, case=mrn_case, patient_id="1CT1")
    StudyFactory(organization=org_a, case=mrn_case, patient_id=MRN)  # the patient's own, not named
    _grant(mrn_case, owner, grantee=patient, studies=[held], **EDUCATION)
    assert _access(client_as(owner), mrn_case, patient.email).startswith(NOTHING_YET)


def test_any_share_to_a_patient_account_and_an_education_link_are_concerned(org_a, mrn_case, owner, patient,
                                                                            consultant, client_as):
    StudyFactory(organization=org_a, case=mrn_case, patient_id="1CT1")
    _grant(mrn_case, owner, grantee=patient, permissions=["view", "download_preview"])
    link = _grant(mrn_case, owner, grantee=None, **EDUCATION)  # an education share's link: its patient
    _grant(mrn_case, owner, grantee=consultant)  # a consultant is given the study
    assert policy.grants_held_back_entirely([*mrn_case.grants.order_by("pk")]) == [
        (OTHER_PATIENT,), (OTHER_PATIENT,), ()]
    assert link.pk
    client = client_as(owner)
    assert _access(client, mrn_case, patient.email).startswith(NOTHING_YET)
    assert _access(client, mrn_case, consultant.email) == "View, Download preview, Download original"


def test_the_reasons_name_each_kind_found(org_a, mrn_case, owner, patient):
    StudyFactory(organization=org_a, case=mrn_case, patient_id="")
    StudyFactory(organization=org_a, case=mrn_case, patient_id="1CT1")
    grant = _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    assert policy.grants_held_back_entirely([grant]) == [(OTHER_PATIENT, NO_PATIENT_ID)]
    assert policy.grants_held_back_entirely([grant], holder=patient) == [(OTHER_PATIENT, NO_PATIENT_ID)]


def test_a_case_with_no_study_holds_nothing_back(mrn_case, owner, patient):
    grant = _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    assert policy.grants_held_back_entirely([grant]) == [()]


# --- the close and attach confirmations say it as the case page does -------------------------

def _listed(html: str, testid: str) -> str:
    """The text a confirmation's list gives the one grant it names: after its person, before "until"."""
    listed = _text(re.search(rf'data-testid="{testid}">(.*?)</ul>', html, re.S).group(1)).replace("&#x27;", "'")
    return listed


def _close_page(client, case) -> str:
    return client.get(reverse("cases:case_close", args=[case.public_id])).content.decode()


def _attach_page(client, org, case) -> str:
    loose = StudyFactory(organization=org, case=None, patient_id=MRN)
    url = reverse("imaging:study_attach", args=[loose.public_id])
    return client.get(url, {"case": str(case.public_id)}).content.decode()


PAGES = [pytest.param("close-ends", id="close"), pytest.param("attach-reaches", id="attach")]


def _page(testid, client, org, case) -> str:
    return _close_page(client, case) if testid == "close-ends" else _attach_page(client, org, case)


@pytest.mark.parametrize("testid", PAGES)
@pytest.mark.parametrize(("patient_ids", "why"), [
    pytest.param(["1CT1"], "The patient ID in their images differs from this case's MRN.", id="other_patient"),
    pytest.param([""], "Their images carry no patient ID.", id="no_patient_id"),
])
def test_the_confirmations_say_a_held_back_share_gives_nothing_yet_and_why(
        org_a, mrn_case, owner, patient, client_as, testid, patient_ids, why):
    for pid in patient_ids:
        StudyFactory(organization=org_a, case=mrn_case, patient_id=pid)
    _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    html = _page(testid, client_as(owner), org_a, mrn_case)
    listed = _listed(html, testid)
    given = listed.split(patient.email)[1].split("until")[0].strip(" ·")
    assert given == f"{NOTHING_YET} {why} See the studies", listed
    assert "Download the education copy" not in listed
    # the same piece as the case page's, its link to the case page's list of studies
    assert 'data-testid="participant-held-back"' in html
    assert f'href="{mrn_case.get_absolute_url()}#studies"' in html


@pytest.mark.parametrize("testid", PAGES)
def test_the_confirmations_list_a_share_giving_some_studies_as_before(org_a, mrn_case, owner, patient, consultant,
                                                                     client_as, testid):
    StudyFactory(organization=org_a, case=mrn_case, patient_id="1CT1")
    StudyFactory(organization=org_a, case=mrn_case, patient_id=MRN)
    _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    html = _page(testid, client_as(owner), org_a, mrn_case)
    listed = _listed(html, testid)
    assert listed.split(patient.email)[1].split("until")[0].strip(" ·") == "Download the education copy"
    assert 'data-testid="participant-held-back"' not in html


@pytest.mark.parametrize("testid", PAGES)
def test_a_coordinator_is_told_without_a_link_to_studies_their_role_is_not_shown(org_a, mrn_case, owner, patient,
                                                                                client_as, testid):
    """A coordinator manages the case and uploads into it but is shown no studies: the reason is
    said, the link to a list the case page does not show them is not."""
    coordinator = member(org_a, Role.COORDINATOR, email="coordinator@alpha.example")
    StudyFactory(organization=org_a, case=mrn_case, patient_id="1CT1")
    _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    html = _page(testid, client_as(coordinator), org_a, mrn_case)
    given = _listed(html, testid).split(patient.email)[1].split("until")[0].strip(" ·")
    assert given == f"{NOTHING_YET} The patient ID in their images differs from this case's MRN.", given
    assert "#studies" not in html


def test_the_case_page_links_the_studies_only_for_whom_it_lists_them(org_a, mrn_case, owner, patient, client_as):
    coordinator = member(org_a, Role.COORDINATOR, email="coordinator@alpha.example")
    StudyFactory(organization=org_a, case=mrn_case, patient_id="1CT1")
    _grant(mrn_case, owner, grantee=patient, **EDUCATION)
    assert _access(client_as(owner), mrn_case, patient.email).endswith("See the studies")
    assert _access(client_as(coordinator), mrn_case, patient.email) == (
        f"{NOTHING_YET} The patient ID in their images differs from this case's MRN.")
