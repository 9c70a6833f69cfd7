"""Case, note and tumor-board services: who may, what they record, and what access they give
and take."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases import services
from apps.cases.models import BoardSession, BoardState, Case, CaseNote, CaseStatus, Patient
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.services import grant_create
from tests.factories import BoardSessionFactory, CaseFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

CASE_ACTIONS = [Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
                Action.SHARE_CASE, Action.MANAGE_CASE]


def _soon(hours: int = 24):
    return timezone.now() + timedelta(hours=hours)


def _phi_free(case_or_patient_events, *phi: str) -> None:
    dumped = json.dumps([e.details for e in case_or_patient_events])
    for value in phi:
        assert value not in dumped


# --- patients and cases ---------------------------------------------------------------------

def test_case_create_picks_a_known_patient_or_creates_one_and_audits_ids_only(org_a, clinician_a):
    patient, created = services.patient_get_or_create(organization=org_a, by=clinician_a, mrn=" MRN-77 ",
                                                      name="Jane Roe", birth_date=None)
    assert created and patient.mrn == "MRN-77"
    again, created = services.patient_get_or_create(organization=org_a, by=clinician_a, mrn="MRN-77", name="")
    assert not created and again == patient
    case = services.case_create(organization=org_a, by=clinician_a, patient=patient, title="Chest CT",
                                referring_question="Nodule growth?", referred_by="Dr. Lee, Riverside",
                                service_line="Thoracic oncology")
    assert case.status == CaseStatus.OPEN and case.created_by == clinician_a
    events = list(AuditEvent.objects.filter(organization=org_a).order_by("id"))
    assert [e.action for e in events] == ["patient.created", "case.created"]
    assert events[1].case_ref == case.public_id
    _phi_free(events, "Jane Roe", "MRN-77", "Nodule growth?")


@pytest.mark.parametrize("role", list(Role))
def test_the_responsible_clinician_is_a_clinician_or_radiologist_here_for_the_service_too(org_a, org_b, clinician_a,
                                                                                         role):
    """The case form offers only this organization's active clinicians and radiologists as a
    case's responsible clinician (an owner of the case for the policy); the services accepted any
    active member (a patient, a consultant, a coordinator). One rule for both."""
    from apps.cases.forms import CaseForm
    from apps.organizations.models import Membership

    person = member(org_a, role)
    Membership.objects.create(user=person, organization=org_b, role=Role.CLINICIAN)  # a role elsewhere is not one here
    accepted = role in (Role.CLINICIAN, Role.RADIOLOGIST)
    assert (person in CaseForm(organization=org_a).fields["responsible_clinician"].queryset) is accepted
    patient = PatientFactory(organization=org_a)
    if accepted:
        case = services.case_create(organization=org_a, by=clinician_a, patient=patient, title="t",
                                    responsible_clinician=person)
        assert case.responsible_clinician == person
    else:
        with pytest.raises(ValidationError) as refused:
            services.case_create(organization=org_a, by=clinician_a, patient=patient, title="t",
                                 responsible_clinician=person)
        assert "responsible_clinician" in refused.value.error_dict
        assert not Case.objects.exists()
        case = CaseFactory(organization=org_a, responsible_clinician=None)
        with pytest.raises(ValidationError):
            services.case_update(case=case, by=clinician_a, values={"responsible_clinician": person})
        case.refresh_from_db()
        assert case.responsible_clinician is None


def test_a_responsible_clinician_who_left_is_refused_by_the_service(org_a, clinician_a):
    from apps.organizations.models import Membership

    person = member(org_a, Role.CLINICIAN)
    Membership.objects.filter(user=person).update(is_active=False)
    case = CaseFactory(organization=org_a, responsible_clinician=None)
    with pytest.raises(ValidationError):
        services.case_update(case=case, by=clinician_a, values={"responsible_clinician": person})


def test_a_new_mrn_needs_a_name(org_a, clinician_a):
    with pytest.raises(ValidationError):
        services.patient_get_or_create(organization=org_a, by=clinician_a, mrn="NEW-1", name=" ")
    assert not Patient.objects.exists()


def test_the_same_mrn_in_another_organization_is_another_patient(org_a, org_b, clinician_a):
    theirs = PatientFactory(organization=org_b, mrn="SHARED-1")
    mine, created = services.patient_get_or_create(organization=org_a, by=clinician_a, mrn="SHARED-1", name="A")
    assert created and mine != theirs and mine.organization == org_a
    with pytest.raises(ValidationError):
        services.case_create(organization=org_a, by=clinician_a, patient=theirs, title="x")


@pytest.mark.parametrize("role", [Role.EXTERNAL_CONSULTANT, Role.PATIENT])
def test_outsiders_cannot_create_or_edit_cases(org_a, role):
    outsider = member(org_a, role)
    patient = PatientFactory(organization=org_a)
    with pytest.raises(PermissionDenied):
        services.case_create(organization=org_a, by=outsider, patient=patient, title="x")
    case = CaseFactory(organization=org_a)
    with pytest.raises(PermissionDenied):
        services.case_update(case=case, by=outsider, values={"title": "y"})
    with pytest.raises(PermissionDenied):
        services.case_close(case=case, by=outsider)
    assert AuditEvent.objects.filter(action="access.denied", outcome="denied").count() == 3


def test_case_update_records_which_fields_changed_not_their_text(org_a, clinician_a):
    case = CaseFactory(organization=org_a, title="Before")
    changed = services.case_update(case=case, by=clinician_a,
                                   values={"title": "After", "referring_question": "Secret detail",
                                           "service_line": case.service_line})
    assert changed == ["title", "referring_question"]
    case.refresh_from_db()
    assert case.title == "After"
    event = AuditEvent.objects.get(action="case.edited")
    assert event.details == {"fields": ["referring_question", "title"]}
    assert services.case_update(case=case, by=clinician_a, values={"title": "After"}) == []
    assert AuditEvent.objects.filter(action="case.edited").count() == 1


def test_a_new_responsible_clinician_is_named_in_the_trail(org_a, clinician_a):
    """The responsible clinician is an owner of the case for the policy (deciding requests for
    its originals): the event names who lost and who gained that, by account id."""
    before, after = member(org_a, Role.CLINICIAN), member(org_a, Role.RADIOLOGIST)
    case = CaseFactory(organization=org_a, responsible_clinician=before)
    services.case_update(case=case, by=clinician_a, values={"responsible_clinician": after})
    services.case_update(case=case, by=clinician_a, values={"responsible_clinician": None})
    assert [e.details for e in AuditEvent.objects.filter(action="case.edited").order_by("id")] == [
        {"fields": ["responsible_clinician"],
         "responsible_clinician": {"before": str(before.public_id), "after": str(after.public_id)}},
        {"fields": ["responsible_clinician"],
         "responsible_clinician": {"before": str(after.public_id), "after": None}}]


# --- closing --------------------------------------------------------------------------------

@pytest.fixture
def every_kind_of_access(org_a, clinician_a):
    """A case shared in every way the sharing app offers: a user grant, a download grant, a
    group grant, an invitation accepted by e-mail, a tumor-board grant, an identity-linked link
    and an anonymous link."""
    from apps.sharing.services import share_link_create

    org_a.anonymous_links_enabled = True
    org_a.save()
    case = CaseFactory(organization=org_a)
    consultant, reader, g1, g2, invited, board_member = (member(org_a, Role.EXTERNAL_CONSULTANT) for _ in range(6))
    grants = {
        "user": grant_create(case=case, grantee=consultant, permissions=["view"], expires_at=_soon(), by=clinician_a),
        "download": grant_create(case=case, grantee=reader, expires_at=_soon(), by=clinician_a,
                                 permissions=["view", "download_preview", "download_original"]),
        "group": grant_create(case=case, grantee=None, group_members=[g1, g2], group_name="Board B",
                              permissions=["view"], expires_at=_soon(), by=clinician_a),
        "invitation": grant_create(case=case, grantee=None, grantee_email=invited.email, permissions=["view"],
                                   expires_at=_soon(), by=clinician_a),
        "anonymous": grant_create(case=case, grantee=None, permissions=["view"], expires_at=_soon(), by=clinician_a),
    }
    # the invitation is accepted: the grant is bound to the user who opened it
    Grant.objects.filter(pk=grants["invitation"].pk).update(grantee=invited)
    board = BoardSessionFactory(organization=org_a, host=clinician_a)
    board.cases.add(case)
    board.participants.add(board_member)
    services.board_start(board=board, by=clinician_a)
    grants["board"] = board.grants.get()
    user_link, _ = share_link_create(grant=grants["user"], by=clinician_a)
    anon_link, _ = share_link_create(grant=grants["anonymous"], by=clinician_a, anonymous=True)
    holders = {"user": [consultant], "download": [reader], "group": [g1, g2], "invitation": [invited],
               "board": [board_member]}
    return case, grants, holders, [user_link, anon_link]


def _anon_holder(link):
    return policy.LinkHolder(link_ids=(link.pk,))


def test_closing_a_case_ends_every_grant_and_link_on_it(every_kind_of_access, clinician_a):
    from apps.sharing.services import LinkRefusal, share_link_refusal

    case, grants, holders, links = every_kind_of_access
    user_link, anon_link = links
    # before: every route in works
    for kind, users in holders.items():
        for user in users:
            assert policy.can(user, Action.VIEW_IMAGES, case), kind
            assert Case.objects.visible_to(user).filter(pk=case.pk).exists(), kind
    assert policy.can(_anon_holder(anon_link), Action.VIEW_IMAGES, case)
    assert share_link_refusal(link=user_link, user=holders["user"][0]) is None
    assert share_link_refusal(link=anon_link, user=None) is None

    revoked = services.case_close(case=case, by=clinician_a)

    assert revoked == len(grants)  # the shares the confirmation lists, not their links too
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED and case.closed_at is not None and case.closed_by == clinician_a
    for kind, grant in grants.items():
        grant.refresh_from_db()
        assert grant.revoked_at is not None and grant.revoke_reason == "case_closed", kind
        assert not grant.is_live(), kind
    for kind, users in holders.items():
        for user in users:
            for action in CASE_ACTIONS:
                assert not policy.can(user, action, case), (kind, action)
            assert not Case.objects.visible_to(user).filter(pk=case.pk).exists(), kind
    for link in links:
        link.refresh_from_db()
        assert link.revoked_at is not None
    for action in CASE_ACTIONS:
        assert not policy.can(_anon_holder(anon_link), action, case), action
    assert share_link_refusal(link=user_link, user=holders["user"][0]) == LinkRefusal.DEAD
    assert share_link_refusal(link=anon_link, user=None) == LinkRefusal.DEAD
    event = AuditEvent.objects.get(action="case.closed")
    assert event.details == {"grants_revoked": len(grants), "links_revoked": len(links)}

    # reopening does not revive any of them
    services.case_reopen(case=case, by=clinician_a)
    case.refresh_from_db()
    assert case.is_open
    for kind, users in holders.items():
        for user in users:
            assert not policy.can(user, Action.VIEW_CASE, case), kind
    assert not policy.can(_anon_holder(anon_link), Action.VIEW_CASE, case)
    assert share_link_refusal(link=anon_link, user=None) == LinkRefusal.DEAD
    assert not Grant.objects.filter(case=case).live().exists()
    assert list(AuditEvent.objects.filter(action__startswith="case.").values_list("action", flat=True)) == [
        "case.closed", "case.reopened"]


def test_a_closed_case_takes_no_new_grant_or_note_and_cannot_close_twice(org_a, clinician_a):
    case = CaseFactory(organization=org_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    services.case_close(case=case, by=clinician_a)
    with pytest.raises(ValidationError):
        grant_create(case=case, grantee=consultant, permissions=["view"], expires_at=_soon(), by=clinician_a)
    with pytest.raises(PermissionDenied):
        services.note_add(case=case, by=clinician_a, body="late note")
    with pytest.raises(ValidationError):
        services.case_close(case=case, by=clinician_a)
    services.case_reopen(case=case, by=clinician_a)
    with pytest.raises(ValidationError):
        services.case_reopen(case=case, by=clinician_a)


# --- notes ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("who", "allowed"), [
    ("clinician", True), ("coordinator", True), ("consultant_with_grant", True),
    ("consultant_without_grant", False), ("other_org_clinician", False),
])
def test_who_may_add_a_note(org_a, org_b, clinician_a, who, allowed):
    case = CaseFactory(organization=org_a)
    user = {
        "clinician": lambda: clinician_a,
        "coordinator": lambda: member(org_a, Role.COORDINATOR),
        "consultant_with_grant": lambda: member(org_a, Role.EXTERNAL_CONSULTANT),
        "consultant_without_grant": lambda: member(org_a, Role.EXTERNAL_CONSULTANT),
        "other_org_clinician": lambda: member(org_b, Role.CLINICIAN),
    }[who]()
    if who == "consultant_with_grant":
        grant_create(case=case, grantee=user, permissions=["view"], expires_at=_soon(), by=clinician_a)
    if allowed:
        note = services.note_add(case=case, by=user, body="Stable since 2024.", kind="report")
        assert note.author == user and note.organization_id == org_a.pk and note.kind == "report"
        event = AuditEvent.objects.get(action="note.added")
        assert event.case_ref == case.public_id and "Stable" not in json.dumps(event.details)
    else:
        with pytest.raises(PermissionDenied):
            services.note_add(case=case, by=user, body="x")
        assert not CaseNote.objects.exists()
        assert AuditEvent.objects.filter(action="access.denied", case_ref=case.public_id).exists()


def test_an_empty_note_is_refused(org_a, clinician_a):
    case = CaseFactory(organization=org_a)
    with pytest.raises(ValidationError):
        services.note_add(case=case, by=clinician_a, body="   ")


# --- tumor boards ---------------------------------------------------------------------------

@pytest.fixture
def board(org_a):
    host = member(org_a, Role.RADIOLOGIST)
    cases = [CaseFactory(organization=org_a) for _ in range(2)]
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    coordinator = member(org_a, Role.COORDINATOR)
    board = services.board_create(organization=org_a, by=host, host=host, title="Thoracic board",
                                  meeting_at=_soon(2), review_days=6, cases=cases,
                                  participants=[consultant, coordinator, host])
    return board, host, cases, consultant, coordinator


def test_starting_a_board_gives_each_participant_view_on_each_case_until_the_window_ends(board):
    board, host, cases, consultant, coordinator = board
    assert not policy.can(consultant, Action.VIEW_CASE, cases[0])
    assert not policy.can(coordinator, Action.VIEW_IMAGES, cases[0])  # status, not pixels, by role

    made = services.board_start(board=board, by=host)

    assert made == 4  # 2 participants (the host needs none) x 2 cases
    board.refresh_from_db()
    assert board.state == BoardState.LIVE and board.started_at is not None
    grants = list(board.grants.all())
    assert {(g.case_id, g.grantee_id) for g in grants} == {(c.pk, u.pk) for c in cases
                                                           for u in (consultant, coordinator)}
    for g in grants:
        assert g.permissions == ["view"] and g.source == "board" and g.created_by == host
        assert g.expires_at == board.started_at + timedelta(days=6)
    for case in cases:
        for user in (consultant, coordinator):
            assert policy.can(user, Action.VIEW_IMAGES, case)
            assert not policy.can(user, Action.DOWNLOAD_ORIGINAL, case)
    # a second start makes no second set of grants
    with pytest.raises(ValidationError):
        services.board_start(board=board, by=host)
    assert Grant.objects.count() == 4

    revoked = services.board_end(board=board, by=host)

    assert revoked == 4
    board.refresh_from_db()
    assert board.state == BoardState.ENDED and board.ended_at is not None
    for case in cases:
        assert not policy.can(consultant, Action.VIEW_CASE, case)
        assert not policy.can(coordinator, Action.VIEW_IMAGES, case)
        assert policy.can(host, Action.VIEW_IMAGES, case)  # staff keep their role's access
    assert {g.revoke_reason for g in Grant.objects.all()} == {"board_ended"}
    actions = list(AuditEvent.objects.filter(action__startswith="board.").values_list("action", flat=True))
    assert actions == ["board.created", "board.started", "board.ended"]


def test_only_the_host_starts_and_ends_a_board(board, org_a):
    board, host, cases, consultant, coordinator = board
    other_radiologist = member(org_a, Role.RADIOLOGIST)
    for user in (other_radiologist, consultant, coordinator):
        with pytest.raises(PermissionDenied):
            services.board_start(board=board, by=user)
    board.refresh_from_db()
    assert board.state == BoardState.SCHEDULED and not Grant.objects.exists()
    services.board_start(board=board, by=host)
    with pytest.raises(PermissionDenied):
        services.board_end(board=board, by=consultant)
    assert policy.can(consultant, Action.VIEW_CASE, cases[0])
    assert AuditEvent.objects.filter(action="access.denied", outcome="denied").count() == 4


def test_a_closed_case_on_a_board_is_skipped(board):
    board, host, cases, consultant, _coordinator = board
    services.case_close(case=cases[1], by=host)
    assert services.board_start(board=board, by=host) == 2
    assert policy.can(consultant, Action.VIEW_CASE, cases[0])
    assert not policy.can(consultant, Action.VIEW_CASE, cases[1])


def test_a_participant_removed_from_the_organization_before_the_meeting_gets_no_access(board):
    """Participants must be members: one whose membership was deactivated after the board was
    scheduled (a consultant's engagement ended) is given nothing when the meeting starts."""
    from apps.organizations.models import Membership

    board, host, cases, consultant, coordinator = board
    assert policy.can(coordinator, Action.VIEW_CASE, cases[0])  # staff: by role
    Membership.objects.filter(user=consultant, organization=board.organization).update(is_active=False)
    assert services.board_start(board=board, by=host) == 2  # the coordinator's two grants only
    assert not Grant.objects.filter(grantee=consultant).exists()
    assert not policy.can(consultant, Action.VIEW_CASE, cases[0])


def test_board_members_and_cases_must_belong_to_the_organization(org_a, org_b):
    host = member(org_a, Role.RADIOLOGIST)
    stranger = member(org_b, Role.EXTERNAL_CONSULTANT)
    with pytest.raises(ValidationError):
        services.board_create(organization=org_a, by=host, host=host, title="b", meeting_at=_soon(), review_days=7,
                              cases=[], participants=[stranger])
    with pytest.raises(ValidationError):
        services.board_create(organization=org_a, by=host, host=host, title="b", meeting_at=_soon(), review_days=7,
                              cases=[CaseFactory(organization=org_b)], participants=[])
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    with pytest.raises(ValidationError):  # the host must be able to run boards
        services.board_create(organization=org_a, by=host, host=consultant, title="b", meeting_at=_soon(),
                              review_days=7, cases=[], participants=[])
    with pytest.raises(ValidationError):  # the seed's review window: 5 to 7 days
        services.board_create(organization=org_a, by=host, host=host, title="b", meeting_at=_soon(),
                              review_days=30, cases=[], participants=[])


def test_an_attachment_whose_stored_bytes_are_deleted_meanwhile_is_stored_again(org_a, clinician_a, monkeypatch):
    """A preview image saved from a study and attached to a case is the study's own blob (dedup).
    If the study is deleted between the lookup and the attachment's commit, the bytes are stored
    again instead of the row pointing at a deleted blob."""
    import io

    from apps.imaging import blobs
    from apps.imaging.models import Blob

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20
    shared = blobs.put_blob(io.BytesIO(png))  # a study's preview, say
    real_put = blobs.put_blob

    def put(fileobj, **kwargs):
        blob = real_put(fileobj, **kwargs)
        if blob.pk == shared.pk:  # that study's deletion commits now
            blobs.blob_files_delete(blobs.blobs_unreferenced_delete([blob.pk]))
        return blob

    monkeypatch.setattr(blobs, "put_blob", put)
    case = CaseFactory(organization=org_a)
    attachment = services.attachment_add(case=case, by=clinician_a, fileobj=io.BytesIO(png), filename="slice.png",
                                         kind="annotated")
    assert not Blob.objects.filter(pk=shared.pk).exists()
    attachment.refresh_from_db()
    assert blobs.open_blob(Blob.objects.get(pk=attachment.blob_id)).read() == png


def test_running_a_board_is_a_policy_decision_for_its_host_while_their_role_manages_cases(board, org_a):
    """Starting a meeting gives access away, so the policy module decides it (Action.RUN_BOARD):
    the host, and only while their role may manage cases there."""
    from apps.organizations.models import Membership

    board, host = board[:2]
    assert policy.can(host, Action.RUN_BOARD, board)
    assert not policy.can(member(org_a, Role.RADIOLOGIST), Action.RUN_BOARD, board)
    assert not policy.can(member(org_a, Role.ORG_ADMIN), Action.RUN_BOARD, board)
    Membership.objects.filter(user=host, organization=org_a).update(role=Role.EXTERNAL_CONSULTANT)
    assert not policy.can(host, Action.RUN_BOARD, board)
    with pytest.raises(PermissionDenied):
        services.board_start(board=board, by=host)
    denial = AuditEvent.objects.get(action="access.denied")
    assert denial.details["wanted"] == "run_board"


def test_an_edit_read_before_the_meeting_started_does_not_undo_the_start(board):
    """The edit page was loaded (and its board read) while the board was scheduled; the host
    starts the meeting before the edit is saved. Saving wrote the whole row back, the state
    "scheduled" included: the live board could no longer be ended (its grants stayed until the
    window closed) and a second start made a second set of grants. The edit is refused."""
    board, host, cases, consultant, coordinator = board
    read_before = BoardSession.objects.get(pk=board.pk)
    services.board_start(board=board, by=host)

    with pytest.raises(ValidationError):
        services.board_update(board=read_before, by=coordinator, host=host, title="Renamed",
                              meeting_at=read_before.meeting_at, review_days=7, cases=cases,
                              participants=[consultant])

    board.refresh_from_db()
    assert board.state == BoardState.LIVE and board.title == "Thoracic board"
    assert services.board_end(board=board, by=host) == 4


def test_a_patient_account_is_never_a_board_participant(board, org_a, org_b, client_as):
    """A board gives each participant view access to every case on it: other patients' cases. A
    patient account is not offered on the board form, is refused by the service, and one whose
    role became patient after the board was scheduled gets nothing when the meeting starts (a
    patient who also works elsewhere is not kept to the patient portal, so the grant would open
    the case pages and their images)."""
    from django.urls import reverse

    from apps.organizations.models import Membership

    board, host, cases, consultant, _coordinator = board
    patient = member(org_a, Role.PATIENT)
    Membership.objects.create(user=patient, organization=org_b, role=Role.CLINICIAN)  # staff elsewhere
    page = client_as(host).get(reverse("cases:board_create")).content.decode()
    assert consultant.email in page and patient.email not in page
    with pytest.raises(ValidationError):
        services.board_create(organization=org_a, by=host, host=host, title="b", meeting_at=_soon(), review_days=7,
                              cases=cases, participants=[consultant, patient])
    with pytest.raises(ValidationError):
        services.board_update(board=board, by=host, host=host, title="b", meeting_at=_soon(), review_days=7,
                              cases=cases, participants=[patient])

    Membership.objects.filter(user=consultant, organization=org_a).update(role=Role.PATIENT)
    assert services.board_start(board=board, by=host) == 2  # the coordinator's grants only
    assert not Grant.objects.filter(grantee=consultant).exists()
    assert not policy.can(consultant, Action.VIEW_CASE, cases[0])


def test_the_board_and_case_forms_offer_people_by_their_role_in_this_organization(org_a, org_b, client_as):
    """A person's role elsewhere does not qualify them here: a consultant of this organization
    who is a radiologist in another is not offered as a board host, nor a patient here who is a
    clinician elsewhere as a case's responsible clinician."""
    from django.urls import reverse

    from apps.organizations.models import Membership

    coordinator = member(org_a, Role.COORDINATOR)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    Membership.objects.create(user=consultant, organization=org_b, role=Role.RADIOLOGIST)
    patient = member(org_a, Role.PATIENT)
    Membership.objects.create(user=patient, organization=org_b, role=Role.CLINICIAN)
    client = client_as(coordinator)
    host_field = client.get(reverse("cases:board_create")).context["form"].fields["host"]
    assert consultant not in host_field.queryset and coordinator in host_field.queryset
    clinician_field = client.get(reverse("cases:case_create")).context["form"].fields["responsible_clinician"]
    assert patient not in clinician_field.queryset


def test_a_participant_sees_the_board_only_while_it_gives_them_access(board, org_a, client_as):
    """A live board's page (its title, host and the names and addresses of everyone on it) is
    shown to a participant while the board gives them access: not once the review window is
    over though the host never ended it, nor once their membership ended (a consultant whose
    engagement ended) (both were 200 while the board stayed live)."""
    from django.urls import reverse

    from apps.organizations.models import Membership
    from apps.organizations.services import membership_update

    board, host, _cases, consultant, coordinator = board
    url = reverse("cases:board_detail", args=[board.public_id])
    assert client_as(consultant).get(url).status_code == 404  # scheduled: nothing given yet
    services.board_start(board=board, by=host)
    assert client_as(consultant).get(url).status_code == 200

    Grant.objects.filter(grantee=consultant).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert client_as(consultant).get(url).status_code == 404  # the window is over; the board is still "live"
    assert client_as(coordinator).get(url).status_code == 200  # staff see boards by their role

    Grant.objects.filter(grantee=consultant).update(expires_at=_soon())
    admin = member(org_a, Role.ORG_ADMIN)
    membership_update(membership=Membership.objects.get(user=consultant, organization=org_a), by=admin,
                      role=Role.EXTERNAL_CONSULTANT, is_active=False)
    assert client_as(consultant).get(url).status_code == 404


def test_a_coordinator_ends_a_live_board_whose_host_lost_their_rights(board, org_a):
    """Only the host could end a meeting: once the host was deactivated (or demoted) mid-meeting,
    nobody could, and the board's grants lasted the whole review window. Ending a board only takes
    access away; the host or anyone who may manage cases there (policy Action.END_BOARD) may.
    Starting stays the host's."""
    from apps.organizations.models import Membership
    from apps.organizations.services import membership_update

    board, host, cases, consultant, coordinator = board
    services.board_start(board=board, by=host)
    membership_update(membership=Membership.objects.get(user=host, organization=org_a),
                      by=member(org_a, Role.ORG_ADMIN), role=Role.RADIOLOGIST, is_active=False)
    with pytest.raises(PermissionDenied):
        services.board_end(board=board, by=consultant)
    assert AuditEvent.objects.get(action="access.denied").details == {"wanted": "end_board"}
    assert policy.can(consultant, Action.VIEW_CASE, cases[0])

    assert services.board_end(board=board, by=coordinator) == 4
    board.refresh_from_db()
    assert board.state == BoardState.ENDED
    assert not policy.can(consultant, Action.VIEW_CASE, cases[0])
    assert {g.revoke_reason for g in board.grants.all()} == {"board_ended"}
    assert set(board.grants.values_list("revoked_by", flat=True)) == {coordinator.pk}
    ended = AuditEvent.objects.get(action="board.ended")
    assert ended.actor == coordinator and ended.details["by_host"] is False
    assert not policy.can(coordinator, Action.RUN_BOARD, board)  # starting stays the host's
    assert not policy.can(consultant, Action.END_BOARD, board)  # a participant, not staff
    assert not policy.can(host, Action.END_BOARD, board)  # no longer a member
    assert not policy.can(coordinator, Action.END_BOARD, org_a)  # decided on a board only


def test_the_host_still_ends_their_board_and_only_the_host_starts_one(board):
    board, host, _cases, _consultant, coordinator = board
    with pytest.raises(PermissionDenied):
        services.board_start(board=board, by=coordinator)
    services.board_start(board=board, by=host)
    assert policy.can(host, Action.END_BOARD, board)
    services.board_end(board=board, by=host)
    assert AuditEvent.objects.get(action="board.ended").details["by_host"] is True


@pytest.mark.parametrize("role", list(Role))
def test_who_may_end_a_board_is_who_may_manage_cases_there(board, org_a, org_b, role):
    board = board[0]
    user = member(org_a, role)
    assert policy.can(user, Action.END_BOARD, board) is (Action.MANAGE_CASE in policy.ROLE_ACTIONS[role])
    assert not policy.can(member(org_b, role), Action.END_BOARD, board)


def test_a_boards_grant_is_not_renewed_on_its_own_and_one_renewed_before_is_listed_as_a_share(board):
    """A board's access ends with the board: its grants cannot be renewed (a renewal, a grant
    outside ``board.grants``, outlived ``board_end``). One renewed before this rule (source board,
    in no board's grants) still reaches the case's studies, so the attach page lists it as a share."""
    from apps.sharing import selectors as sharing_selectors
    from apps.sharing import services as sharing_services
    from apps.sharing.models import GrantSource

    board, host, cases, consultant, _coordinator = board
    services.board_start(board=board, by=host)
    grant = board.grants.get(case=cases[0], grantee=consultant)
    assert sharing_services.grant_renew_refusal(grant=grant) == sharing_services.RenewRefusal.BOARD
    with pytest.raises(ValidationError):
        sharing_services.grant_renew(grant=grant, by=host)
    assert board.grants.count() == 4 and Grant.objects.filter(renewed_from=grant).count() == 0

    assert sharing_selectors.case_wide_grants(case=cases[0]) == []  # listed by their board
    earlier_renewal = grant_create(case=cases[0], grantee=consultant, permissions=["view"], expires_at=_soon(3),
                                   by=host, source=GrantSource.BOARD)
    assert sharing_selectors.case_wide_grants(case=cases[0]) == [earlier_renewal]


def test_participants_are_told_when_the_meeting_starts_and_ends(board, mailoutbox, django_capture_on_commit_callbacks):
    """Starting a meeting told nobody (found by QA: an outside consultant learnt of it by chance):
    each participant gets a notice and an e-mail, with the board's page when it starts; the host,
    who pressed the button, gets none; neither names the board (its title is free text)."""
    from apps.sharing.models import Notification

    board, host, _cases, consultant, coordinator = board
    with django_capture_on_commit_callbacks(execute=True):  # told once the start is committed
        services.board_start(board=board, by=host)
    started = Notification.objects.filter(verb="board.started")
    assert {n.user for n in started} == {consultant, coordinator}
    assert all(n.url.endswith(f"/boards/{board.public_id}/") for n in started)
    assert sorted(m.to[0] for m in mailoutbox) == sorted([consultant.email, coordinator.email])
    assert all(board.title not in m.body and board.title not in m.subject for m in mailoutbox)

    with django_capture_on_commit_callbacks(execute=True):
        services.board_end(board=board, by=host)
    assert {n.user for n in Notification.objects.filter(verb="board.ended")} == {consultant, coordinator}
    assert not Notification.objects.filter(user=host).exists()
