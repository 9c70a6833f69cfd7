"""The staff pages that list who has access say what each grant gives its holder, as the policy
decides it (``policy.grants_give_holders``), not the permissions it names: the case page's "Who
has access", the close confirmation, the attach confirmation and the share review. They listed
``grant.permissions``, so a patient-education share (stored with "view") said "View", which the
policy never gives it (``USE_CASE_GIVES``), and a share whose downloads were used up still said
"Download original". A patient-education share said "Download preview", a copy its patient is
refused (403): the pages name the education copy's download on its own (``GIVES_EDUCATION``)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.services import grant_create
from apps.sharing.usecases import UseCase
from tests.factories import StudyFactory, member
from tests.pages import queries_and_html
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db

EDUCATION = {"use_case": UseCase.PATIENT_EDUCATION, "permissions": ["view", "download_preview"],
             "renditions": ["education"]}
ALL = ["view", "download_preview", "download_original"]


def _text(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def _grant(case, by, **fields) -> Grant:
    fields.setdefault("expires_at", timezone.now() + timedelta(days=2))
    fields.setdefault("permissions", ALL)
    fields.setdefault("grantee", None)
    return grant_create(case=case, by=by, **fields)


@pytest.fixture
def patient(org_a, case):
    """The case's patient's portal account, linked to them as their accepted invitation links it (a
    patient's share gives no other account anything: ``policy.is_case_patients_account``)."""
    user = member(org_a, Role.PATIENT, email="patient.quillon@alpha.example")
    link_patient_account(user, case.patient, case=case)
    return user


@pytest.fixture
def used_up(case, owner, consultant):
    """A second-opinion-like share of everything whose one download is used."""
    grant = _grant(case, owner, grantee=consultant, download_limit=1)
    Grant.objects.filter(pk=grant.pk).update(download_count=1)
    return grant


def _participants(html: str) -> dict[str, str]:
    """Each "Who has access" row: its person's text -> its access text."""
    rows = re.findall(r'data-testid="participant">\s*<td>(.*?)</td>\s*'
                      r'<td data-testid="participant-access"[^>]*>(.*?)</td>', html, re.S)
    return {_text(person): _text(access) for person, access in rows}


def _access_of(rows: dict[str, str], email: str) -> str:
    (access,) = [access for person, access in rows.items() if email in person]
    return access


def _listed(html: str, testid: str) -> str:
    return _text(re.search(rf'data-testid="{testid}">(.*?)</ul>', html, re.S).group(1))


def test_the_case_page_says_what_each_participant_is_given(case, owner, patient, consultant, used_up, client_as):
    _grant(case, owner, grantee=patient, **EDUCATION)
    html = client_as(owner).get(reverse("cases:case_detail", args=[case.public_id])).content.decode()
    rows = _participants(html)
    assert len(rows) == 2, rows
    assert _access_of(rows, patient.email) == "Download the education copy"  # no case page, no preview
    assert _access_of(rows, consultant.email) == "View"  # its one download used


def test_the_close_confirmation_says_what_each_share_gives(case, owner, patient, used_up, client_as):
    _grant(case, owner, grantee=patient, **EDUCATION)
    html = client_as(owner).get(reverse("cases:case_close", args=[case.public_id])).content.decode()
    listed = _listed(html, "close-ends")
    assert listed.split(patient.email)[1].split("until")[0].strip(" ·") == "Download the education copy"
    assert "Download original" not in listed and "Download preview" not in listed


def test_the_attach_confirmation_says_what_each_share_gives(org_a, case, owner, patient, used_up, client_as):
    _grant(case, owner, grantee=patient, **EDUCATION)
    loose = StudyFactory(organization=org_a, case=None)
    url = reverse("imaging:study_attach", args=[loose.public_id])
    html = client_as(owner).get(url, {"case": str(case.public_id)}).content.decode()
    listed = _listed(html, "attach-reaches")
    assert listed.split(patient.email)[1].split("until")[0].strip(" ·") == "Download the education copy"
    assert "Download original" not in listed and "Download preview" not in listed


def test_the_share_review_says_what_the_share_will_give(case, owner, patient, client_as):
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    review = client_as(owner).post(url, {"use_case": "patient_education", "recipient_kind": "user",
                                         "recipient_email": patient.email})
    assert review.status_code == 200 and 'name="confirm"' in review.content.decode()
    given = _text(re.search(r'data-testid="confirm-permissions">(.*?)</dd>', review.content.decode(), re.S).group(1))
    assert given == "Download the education copy"


def test_the_share_review_of_a_second_opinion_gives_what_it_names(case, owner, consultant, client_as):
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    review = client_as(owner).post(url, {"use_case": "second_opinion", "recipient_kind": "user",
                                         "recipient_email": consultant.email})
    given = _text(re.search(r'data-testid="confirm-permissions">(.*?)</dd>', review.content.decode(), re.S).group(1))
    assert given == "View, Download preview, Download original"


# --- the policy's answer, for each kind of holder -------------------------------------------

def test_a_named_patient_is_given_the_education_copy_only(case, owner, patient):
    """A share to a patient of its organization gives them what a patient-education share gives
    and nothing else (not the viewer: found by review); the rendition scope and the use case's cap
    are in the answer too."""
    second_opinion = _grant(case, owner, grantee=patient, renditions=["original", "preview"])
    education = _grant(case, owner, grantee=patient, **EDUCATION)
    previews = _grant(case, owner, grantee=member(case.organization, Role.EXTERNAL_CONSULTANT),
                      renditions=["preview"])
    assert policy.grants_give_holders([second_opinion, education, previews]) == [
        (), ("download_education",), ("view", "download_preview")]


def test_the_education_copy_beside_the_preview_is_said_by_download_preview(case, owner, consultant, patient):
    """A share whose downloads include the preview says "Download preview" once, the education copy
    with it; its patient, refused the preview and the viewer, is given the education copy's
    download alone."""
    both = {"permissions": ["view", "download_preview"], "renditions": ["preview", "education"]}
    assert policy.grants_give_holders([_grant(case, owner, grantee=consultant, **both),
                                       _grant(case, owner, grantee=patient, **both)]) == [
        ("view", "download_preview"), ("download_education",)]


def test_a_second_factor_is_taken_as_passed_and_a_share_yet_to_start_as_started(case, owner, consultant):
    later = timezone.now() + timedelta(hours=3)
    mfa = _grant(case, owner, grantee=consultant, mfa_required=True, permissions=["view", "download_preview"])
    not_yet = _grant(case, owner, grantee=consultant, starts_at=later, expires_at=later + timedelta(days=1),
                     permissions=["view"])
    assert policy.grants_give_holders([mfa, not_yet]) == [("view", "download_preview"), ("view",)]
    # its holder, not signed in with a second factor, is given nothing by the first now
    assert policy.grant_gives(consultant, [mfa]) == [()]


def test_groups_invitations_and_links_are_given_what_the_grant_leaves(case, owner, consultant):
    group = _grant(case, owner, group_members=[consultant], group_name="Board", **EDUCATION)
    invited = _grant(case, owner, grantee_email="outside@elsewhere.example", permissions=["view", "reshare"])
    link = _grant(case, owner, permissions=["view", "download_preview"], renditions=["preview"], download_limit=1)
    Grant.objects.filter(pk=link.pk).update(download_count=1)
    link.refresh_from_db()
    assert policy.grants_give_holders([group, invited, link]) == [("download_education",), ("view", "reshare"),
                                                                 ("view",)]


def test_an_inactive_grantee_and_a_dead_share_are_given_nothing(case, owner, consultant):
    grant = _grant(case, owner, grantee=consultant)
    consultant.is_active = False
    consultant.save()
    grant.refresh_from_db()
    revoked = _grant(case, owner, grantee=member(case.organization, Role.EXTERNAL_CONSULTANT))
    Grant.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    revoked.refresh_from_db()
    assert policy.grants_give_holders([grant, revoked]) == [(), ()]


def test_a_share_of_some_studies_gives_on_them_what_it_names(org_a, case, owner, consultant):
    study = StudyFactory(organization=org_a, case=case)
    grant = _grant(case, owner, grantee=consultant, studies=[study], renditions=["original", "preview"])
    assert policy.grants_give_holders([grant]) == [("view", "download_preview", "download_original")]


# --- queries: the lists do not read once per grant ------------------------------------------

def _shares(case, owner, n: int) -> None:
    org = case.organization
    for i in range(n):
        grantee = member(org, Role.PATIENT if i % 2 else Role.EXTERNAL_CONSULTANT)
        if i % 2:  # the case's patient's account (a patient's share gives no other account anything)
            link_patient_account(grantee, case.patient, case=case)
        _grant(case, owner, grantee=grantee, **(EDUCATION if i % 2 else {}))
    _grant(case, owner, group_members=[member(org, Role.EXTERNAL_CONSULTANT)], group_name="Board")
    _grant(case, owner, studies=[StudyFactory(organization=org, case=case)], grantee=member(org, Role.CLINICIAN))


@pytest.mark.parametrize("page", ["case", "close", "attach"])
def test_the_lists_cost_the_same_for_3_shares_as_for_30(org_a, owner, client_as, page):
    from tests.factories import CaseFactory

    counts = {}
    client = client_as(owner)
    for n in (3, 30):
        case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)
        _shares(case, owner, n)
        if page == "case":
            url = reverse("cases:case_detail", args=[case.public_id])
        elif page == "close":
            url = reverse("cases:case_close", args=[case.public_id])
        else:
            loose = StudyFactory(organization=org_a, case=None)
            url = f"{reverse('imaging:study_attach', args=[loose.public_id])}?case={case.public_id}"
        counts[n], html = queries_and_html(client, url)
        assert html.count("Download the education copy") >= n // 2
    assert counts[3] == counts[30], counts
