"""Someone in two organizations works in one at a time (the header's switcher). Found by QA: with
Beta active, a radiologist of Alpha opened Alpha's case page (its patient, notes and documents,
with Edit, Close and "Add note") under Beta's header, and its study page, viewer and tumor board
too. Now the case, study, viewer and tumor board pages of another of the person's organizations
show the page that asks to switch to it (its name only, nothing of the case), whose button
switches and continues to the page; what is sent to such a page's actions (a note, an edit,
closing, reopening, starting or ending a board, deleting a study) is refused (403, recorded)
until it is the active one. Someone who is not a member of the case's organization (an outside
consultant with a share) sees what the share gives as before, and so does a member of one
organization only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases.models import BoardState, CaseNote, CaseStatus
from apps.organizations.models import Organization, Role
from apps.organizations.selectors import memberships_of
from apps.sharing import policy
from apps.sharing.policy import Action
from apps.sharing.services import grant_create
from tests.factories import BoardSessionFactory, CaseFactory, MembershipFactory, StudyFactory, member

pytestmark = pytest.mark.django_db

SWITCH_NEEDED = 'data-testid="switch-needed"'


@pytest.fixture
def morgan(org_a, org_b):
    """A radiologist of Alpha (the case's organization) and of Beta."""
    user = member(org_b, Role.RADIOLOGIST, email="dr.morgan@beta.example")
    MembershipFactory(user=user, organization=org_a, role=Role.RADIOLOGIST)
    return user


@pytest.fixture
def alpha_case(org_a, clinician_a):
    return CaseFactory(organization=org_a, title="Left lung lesion follow-up", created_by=clinician_a,
                       responsible_clinician=clinician_a, referring_question="Growth since the prior CT?",
                       patient__name="Quentin Testpatient", patient__mrn="ZZ-445566")


@pytest.fixture
def alpha_study(org_a, alpha_case):
    return StudyFactory(organization=org_a, case=alpha_case, study_description="CT chest with contrast")


def _client(user, organization=None) -> Client:
    client = Client()
    client.force_login(user)
    if organization is not None:
        switched = client.post(reverse("organizations:switch", kwargs={"organization_id": organization.public_id}))
        assert switched.status_code == 302
    return client


def _case_url(case, name="case_detail") -> str:
    return reverse(f"cases:{name}", kwargs={"case_id": case.public_id})


def _says_only_switch(response, *, then: str, hidden: list[str]) -> None:
    """The switch page: Alpha's name, its switch continuing to ``then``, none of ``hidden``."""
    text = response.content.decode()
    assert SWITCH_NEEDED in text and "Switch to Alpha Hospital" in text, text[:500]
    alpha = Organization.objects.get(slug="alpha")
    assert f'action="{reverse("organizations:switch", kwargs={"organization_id": alpha.public_id})}"' in text
    assert f'name="next" value="{then}"' in text
    for word in hidden:
        assert word not in text, word


CASE_WORDS = ["Left lung lesion follow-up", "Growth since the prior CT?", "Quentin Testpatient", "ZZ-445566"]


def test_another_organizations_case_page_asks_to_switch_and_opens_after(morgan, alpha_case, org_a, org_b):
    client = _client(morgan, org_b)
    url = _case_url(alpha_case)
    page = client.get(url)
    assert page.status_code == 200
    _says_only_switch(page, then=url, hidden=[*CASE_WORDS, _case_url(alpha_case, "case_edit")])
    assert not AuditEvent.objects.filter(action="case.viewed", target_id=str(alpha_case.public_id)).exists()
    # the switch continues to the case, now under Alpha's header, with its actions
    switched = client.post(reverse("organizations:switch", kwargs={"organization_id": org_a.public_id}),
                           {"next": url})
    assert switched.status_code == 302 and switched["Location"] == url
    opened = client.get(url)
    text = opened.content.decode()
    assert opened.status_code == 200 and SWITCH_NEEDED not in text
    assert "Left lung lesion follow-up" in text and _case_url(alpha_case, "case_edit") in text
    assert client.post(_case_url(alpha_case, "note_add"), {"body": "Stable.", "kind": "note"}).status_code == 302
    assert CaseNote.objects.filter(case=alpha_case, author=morgan).count() == 1


def test_another_organizations_case_actions_are_refused_and_recorded(morgan, alpha_case, org_a, org_b):
    client = _client(morgan, org_b)
    sent = [
        ("note_add", {"body": "Written under Beta's header.", "kind": "note"}, "add_note", "#notes"),
        ("case_edit", {"title": "Renamed", "referring_question": "x", "service_line": "Oncology"}, "manage_case", None),
        ("case_close", {}, "manage_case", None),
        ("attachment_add", {"kind": "report"}, "attach_document", "#attachments"),
    ]
    for name, data, wanted, anchor in sent:
        response = client.post(_case_url(alpha_case, name), data)
        assert response.status_code == 403, name
        then = _case_url(alpha_case) + anchor if anchor else _case_url(alpha_case, name)
        _says_only_switch(response, then=then, hidden=CASE_WORDS)
        assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                         details__wanted=wanted).exists(), name
    alpha_case.refresh_from_db()
    assert alpha_case.title == "Left lung lesion follow-up" and alpha_case.status == CaseStatus.OPEN
    assert not CaseNote.objects.filter(case=alpha_case).exists()
    # reopening a closed case, likewise
    alpha_case.status = CaseStatus.CLOSED
    alpha_case.save(update_fields=["status"])
    assert client.post(_case_url(alpha_case, "case_reopen")).status_code == 403
    alpha_case.refresh_from_db()
    assert alpha_case.status == CaseStatus.CLOSED


def test_another_organizations_study_page_and_viewer_ask_to_switch(morgan, alpha_study, org_a, org_b):
    client = _client(morgan, org_b)
    study_url = reverse("imaging:study_detail", kwargs={"study_id": alpha_study.public_id})
    page = client.get(study_url)
    assert page.status_code == 200
    _says_only_switch(page, then=study_url, hidden=[*CASE_WORDS, "CT chest with contrast"])
    viewer_url = reverse("viewer:viewer", kwargs={"study_id": alpha_study.public_id})
    viewer = client.get(viewer_url)
    assert viewer.status_code == 200
    _says_only_switch(viewer, then=viewer_url, hidden=[*CASE_WORDS, "CT chest with contrast"])
    delete_url = reverse("imaging:study_delete", kwargs={"study_id": alpha_study.public_id})
    assert client.post(delete_url).status_code == 403
    assert alpha_study.__class__.objects.filter(pk=alpha_study.pk).exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                     details__wanted="delete_study").exists()
    # in Alpha, both open
    in_alpha = _client(morgan, org_a)
    opened = in_alpha.get(study_url)
    assert opened.status_code == 200 and "CT chest with contrast" in opened.content.decode()
    assert SWITCH_NEEDED not in in_alpha.get(viewer_url).content.decode()


def test_a_viewer_open_already_is_not_stopped_by_a_switch_in_another_tab(morgan, alpha_study, org_a, org_b):
    client = _client(morgan, org_a)
    assert SWITCH_NEEDED not in client.get(reverse("viewer:viewer", kwargs={"study_id": alpha_study.public_id})
                                           ).content.decode()
    # another tab switches to Beta: the open viewer's access check (as its frames) still answers
    client.post(reverse("organizations:switch", kwargs={"organization_id": org_b.public_id}))
    check = client.get(reverse("viewer:access", kwargs={"study_id": alpha_study.public_id}))
    assert check.status_code == 200 and check.json() == {"access": True, "diagnostic": True}


def test_another_organizations_tumor_board_asks_to_switch(morgan, alpha_case, org_a, org_b):
    board = BoardSessionFactory(organization=org_a, host=morgan, title="Thoracic board of Alpha")
    board.cases.add(alpha_case)
    client = _client(morgan, org_b)
    url = reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})
    page = client.get(url)
    assert page.status_code == 200
    _says_only_switch(page, then=url, hidden=[*CASE_WORDS, "Thoracic board of Alpha"])
    started = client.post(reverse("cases:board_start", kwargs={"boardsession_id": board.public_id}))
    assert started.status_code == 403
    board.refresh_from_db()
    assert board.state == BoardState.SCHEDULED
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                     details__wanted="run_board").exists()
    opened = _client(morgan, org_a).get(url)
    assert opened.status_code == 200 and "Thoracic board of Alpha" in opened.content.decode()


def test_an_outside_consultant_with_a_share_sees_the_shared_pages_as_before(alpha_study, alpha_case, org_a, org_b,
                                                                            clinician_a):
    outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    grant_create(case=alpha_case, grantee=outsider, permissions=["view"], by=clinician_a,
                 expires_at=timezone.now() + timedelta(hours=24))
    client = _client(outsider, org_b)
    page = client.get(_case_url(alpha_case))
    text = page.content.decode()
    assert page.status_code == 200 and SWITCH_NEEDED not in text and "Left lung lesion follow-up" in text
    assert 'id="note_body"' in text  # the share's "Add note", offered as before
    assert client.post(_case_url(alpha_case, "note_add"), {"body": "Agree.", "kind": "note"}).status_code == 302
    assert CaseNote.objects.filter(case=alpha_case, author=outsider).exists()
    study = client.get(reverse("imaging:study_detail", kwargs={"study_id": alpha_study.public_id}))
    assert study.status_code == 200 and SWITCH_NEEDED not in study.content.decode()
    viewer = client.get(reverse("viewer:viewer", kwargs={"study_id": alpha_study.public_id}))
    assert viewer.status_code == 200 and SWITCH_NEEDED not in viewer.content.decode()
    # the policy: nothing to switch to, and the share's note decided as ever on the page's facts
    request = RequestFactory().get(_case_url(alpha_case))
    request.user, request.my_memberships, request.organization = outsider, memberships_of(user=outsider), org_b
    assert policy.organization_to_switch_to(request, alpha_case) is None
    assert policy.can(outsider, Action.ADD_NOTE, alpha_case, facts=policy.decision_facts(request, outsider))


def test_a_member_of_one_organization_only_is_not_asked(alpha_case, alpha_study, clinician_a):
    client = _client(clinician_a)
    page = client.get(_case_url(alpha_case))
    assert page.status_code == 200 and "Left lung lesion follow-up" in page.content.decode()
    assert SWITCH_NEEDED not in page.content.decode()
    assert client.post(_case_url(alpha_case, "note_add"), {"body": "Seen.", "kind": "note"}).status_code == 302
    study = client.get(reverse("imaging:study_detail", kwargs={"study_id": alpha_study.public_id}))
    assert study.status_code == 200 and SWITCH_NEEDED not in study.content.decode()


def test_the_policy_decides_case_staff_actions_in_the_active_organization_only(morgan, alpha_case, org_a, org_b):
    request = RequestFactory().post(_case_url(alpha_case, "note_add"))
    request.user, request.my_memberships, request.organization = morgan, memberships_of(user=morgan), org_b
    facts = policy.decision_facts(request, morgan)
    assert policy.organization_to_switch_to(request, alpha_case) == org_a
    for action in (Action.ADD_NOTE, Action.MANAGE_CASE, Action.DELETE_STUDY):
        assert not policy.can(morgan, action, alpha_case, facts=facts), action
    # reading is not refused by the policy (the page asks to switch first; an open viewer goes on)
    assert policy.can(morgan, Action.VIEW_IMAGES, alpha_case, facts=facts)
    request.organization = org_a
    assert policy.can(morgan, Action.ADD_NOTE, alpha_case, facts=policy.decision_facts(request, morgan))
    # without a page's request (a service, a task), the roles decide
    assert policy.can(morgan, Action.ADD_NOTE, alpha_case)


def test_another_organizations_case_is_shared_only_after_the_switch(morgan, alpha_case, alpha_study, org_a, org_b,
                                                                     clinician_a):
    from apps.sharing.models import Grant

    client = _client(morgan, org_b)
    urls = [reverse("sharing:case_share", kwargs={"case_id": alpha_case.public_id}),
            reverse("sharing:study_share", kwargs={"study_id": alpha_study.public_id})]
    for url in urls:
        page = client.get(url)
        assert page.status_code == 200, url
        _says_only_switch(page, then=url, hidden=CASE_WORDS)
        refused = client.post(url, {"use_case": "second_opinion", "recipient_kind": "email",
                                    "grantee_email": "someone@elsewhere.example", "confirm": "1"})
        assert refused.status_code == 403 and SWITCH_NEEDED in refused.content.decode(), url
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                     details__wanted="share_case").count() == 2
    assert not Grant.objects.filter(case=alpha_case).exists()
    # the invitation form's cases (shareable_cases) agree with the policy: none of Alpha's in Beta
    request = RequestFactory().get(urls[0])
    request.user, request.my_memberships, request.organization = morgan, memberships_of(user=morgan), org_b
    assert not policy.shareable_cases(morgan, org_a, facts=policy.decision_facts(request, morgan)).exists()
    request.organization = org_a
    assert policy.shareable_cases(morgan, org_a, facts=policy.decision_facts(request, morgan)).filter(
        pk=alpha_case.pk).exists()
    # in Alpha, the share steps open
    opened = _client(morgan, org_a).get(urls[0])
    assert opened.status_code == 200 and SWITCH_NEEDED not in opened.content.decode()
    # an outside consultant allowed to reshare is not asked to switch
    outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    grant_create(case=alpha_case, grantee=outsider, permissions=["view", "reshare"], by=clinician_a,
                 expires_at=timezone.now() + timedelta(hours=24))
    theirs = _client(outsider, org_b).get(urls[0])
    assert theirs.status_code == 200 and SWITCH_NEEDED not in theirs.content.decode()
    assert "Left lung lesion follow-up" in theirs.content.decode()


def test_another_organizations_de_identified_exports_wait_for_the_switch(morgan, alpha_study, org_a, org_b):
    from apps.deid.models import DeidExport
    from tests.factories import DeidExportFactory

    made = DeidExportFactory(organization=org_a, study=alpha_study, created_by=morgan, pseudonym="ANON-ALPHA-7")
    client = _client(morgan, org_b)
    exports_url = reverse("deid:study_exports", kwargs={"study_id": alpha_study.public_id})
    page = client.get(exports_url)
    assert page.status_code == 200
    _says_only_switch(page, then=exports_url, hidden=[*CASE_WORDS, "ANON-ALPHA-7", "CT chest with contrast",
                                                      str(made.public_id)])
    assert client.post(exports_url, {"pseudonym": "ANON-BETA-1"}).status_code == 403
    assert list(DeidExport.objects.filter(study=alpha_study)) == [made]
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                     details__wanted="export_deidentified").exists()
    detail_url = reverse("deid:export_detail", kwargs={"deidexport_id": made.public_id})
    detail = client.get(detail_url)
    assert detail.status_code == 200
    _says_only_switch(detail, then=detail_url, hidden=[*CASE_WORDS, "ANON-ALPHA-7"])
    in_alpha = _client(morgan, org_a)
    listed = in_alpha.get(exports_url)
    assert listed.status_code == 200 and detail_url in listed.content.decode()
    assert "ANON-ALPHA-7" in in_alpha.get(detail_url).content.decode()


def test_another_organizations_patient_is_invited_only_after_the_switch(morgan, alpha_case, org_a, org_b):
    from apps.accounts.models import Invitation

    client = _client(morgan, org_b)
    url = reverse("accounts:patient_invite", kwargs={"case_id": alpha_case.public_id})
    page = client.get(url)
    assert page.status_code == 200
    _says_only_switch(page, then=url, hidden=CASE_WORDS)
    refused = client.post(url, {"email": "patient@example.org", "language": "en"})
    assert refused.status_code == 403 and SWITCH_NEEDED in refused.content.decode()
    assert not Invitation.objects.filter(organization=org_a).exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=morgan, organization=org_a,
                                     details__wanted="share_case").exists()
    opened = _client(morgan, org_a).get(url)
    assert opened.status_code == 200 and SWITCH_NEEDED not in opened.content.decode()
