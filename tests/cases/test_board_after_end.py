"""A tumor board's participants still find it once its meeting ended: in their list of boards,
marked ended, and on its page, which says that the meeting ended and the access it gave them
ended with it. It opens nothing of its cases: no case page, images, notes, documents or
downloads (the grants it gave were revoked; every decision is the policy's). Before, the board
vanished from a participant's list and its page (their notice's link too) was a 404, as if it had
never been (found by review of 3fae494 and 913bb92).

Actors: an outside consultant of the board's organization and a coordinator of it (staff, who
see boards by their role and reach images only through the meeting), both participants; a
clinician of it who took no part; a consultant whose membership ended after the meeting;
another organization's clinician; and people of two organizations, for whom the switch-first
rule stays as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases import services
from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from apps.sharing import policy
from apps.sharing.models import Notification
from apps.sharing.policy import Action
from tests.factories import (
    AttachmentFactory,
    CaseFactory,
    CaseNoteFactory,
    InstanceFactory,
    MembershipFactory,
    SeriesFactory,
    StudyFactory,
    member,
    working_in,
)

pytestmark = pytest.mark.django_db

TITLE = "Thoracic board of Alpha"
CASE_TITLE = "Left lung lesion follow-up"
NOTE = "Nodule unchanged; discussed at the board."
YOURS_ENDED = "This meeting has ended, and the access it gave you to its cases and their images ended with it."
THEIRS_ENDED = "This meeting has ended, and the access it gave its participants to its cases ended with it."
SWITCH_NEEDED = 'data-testid="switch-needed"'
STAFF_ENDED = 'Your role still lets you open its cases: <a href="#board-cases">see the cases you can open</a>.'


@pytest.fixture
def world(org_a):
    host = member(org_a, Role.RADIOLOGIST, email="host@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="ext@stmarys.example")
    coordinator = member(org_a, Role.COORDINATOR, email="coord@alpha.example")
    case = CaseFactory(organization=org_a, title=CASE_TITLE)
    study = StudyFactory(organization=org_a, case=case)
    InstanceFactory.create_batch(2, organization=org_a, series=SeriesFactory(organization=org_a, study=study))
    CaseNoteFactory(organization=org_a, case=case, author=host, body=NOTE)
    attachment = AttachmentFactory(organization=org_a, case=case)
    board = services.board_create(organization=org_a, by=host, host=host, title=TITLE,
                                  meeting_at=timezone.now() + timedelta(hours=2), review_days=5, cases=[case],
                                  participants=[consultant, coordinator])
    return board, host, consultant, coordinator, case, study, attachment


def _page(board):
    return reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})


def _client(client_as, user, org):
    client = client_as(user)
    working_in(client, org)
    return client


def _start_and_end(board, host, django_capture_on_commit_callbacks):
    services.board_start(board=board, by=host)
    with django_capture_on_commit_callbacks(execute=True):
        services.board_end(board=board, by=host)
    board.refresh_from_db()


@pytest.mark.parametrize("who", ["consultant", "coordinator"])
def test_a_participant_still_finds_an_ended_board_and_is_told_their_access_ended(
        world, org_a, client_as, django_capture_on_commit_callbacks, who):
    board, host, consultant, coordinator, _case, _study, _attachment = world
    person = consultant if who == "consultant" else coordinator
    _start_and_end(board, host, django_capture_on_commit_callbacks)
    client = _client(client_as, person, org_a)

    listing = client.get(reverse("cases:board_list")).content.decode()
    assert TITLE in listing and _page(board) in listing
    assert 'class="badge badge-ended">Ended<' in listing  # marked ended in the list

    page = client.get(_page(board))
    text = page.content.decode()
    assert page.status_code == 200 and TITLE in text
    assert 'data-testid="board-state">Ended<' in text
    # told their access ended (ask the host) only when it came from the board: the coordinator's
    # role still opens the cases (test_a_staff_participant_is_pointed_to_the_cases_not_to_the_host)
    assert (YOURS_ENDED in text) == (who == "consultant")
    assert "End meeting" not in text and "Start meeting" not in text
    # the notice of the end leads to that page, which now opens
    notice = Notification.objects.get(user=person, verb="board.ended")
    assert notice.url == _page(board)
    assert not AuditEvent.objects.filter(action="access.denied", actor=person).exists()


def test_an_ended_boards_page_gives_an_outside_participant_nothing_of_its_cases(
        world, org_a, client_as, django_capture_on_commit_callbacks):
    board, host, consultant, _coordinator, case, study, attachment = world
    _start_and_end(board, host, django_capture_on_commit_callbacks)
    client = _client(client_as, consultant, org_a)

    text = client.get(_page(board)).content.decode()
    case_page = reverse("cases:case_detail", kwargs={"case_id": case.public_id})
    assert CASE_TITLE not in text and case_page not in text and NOTE not in text
    assert "No case you can open." in text
    # and nothing of the case opens: its page, its study, images, notes, documents, downloads
    for url in (case_page, study.get_absolute_url(),
                reverse("viewer:viewer", kwargs={"study_id": study.public_id}),
                reverse("cases:attachment_download", kwargs={"attachment_id": attachment.public_id})):
        assert client.get(url).status_code == 404, url
    for url in (reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + "?rendition=preview",
                reverse("renditions:case_download", kwargs={"case_id": case.public_id}) + "?rendition=preview"):
        assert client.get(url).status_code in (403, 404), url
    check = client.get(reverse("viewer:access", kwargs={"study_id": study.public_id}))
    assert check.status_code in (403, 404) and check.json().get("ended") == "board"  # as 3fae494 says
    for action in (Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
                   Action.ADD_NOTE, Action.VIEW_DOCUMENTS):
        assert not policy.can(consultant, action, case), action
    assert not policy.can(consultant, Action.VIEW_IMAGES, attachment)


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN])
def test_a_staff_participant_is_pointed_to_the_cases_not_to_the_host(
        world, org_a, client_as, django_capture_on_commit_callbacks, role):
    """Found by QA: an ended board's page told its internal staff participants that the access it
    gave them ended and to ask the host to see its cases again, though their role still shows
    them the cases. Only those whose access came from the board alone are told so
    (policy.sees_board_cases_by_role); staff are told the meeting ended and led to the cases."""
    board, host, consultant, _coordinator, case, _study, _attachment = world
    person = member(org_a, role, email=f"{role}@alpha.example")
    board.participants.add(person)
    _start_and_end(board, host, django_capture_on_commit_callbacks)
    assert policy.sees_board_cases_by_role(person, board)
    assert not policy.sees_board_cases_by_role(consultant, board)

    text = _client(client_as, person, org_a).get(_page(board)).content.decode()
    assert "ask the host" not in text and YOURS_ENDED not in text
    assert THEIRS_ENDED in text and STAFF_ENDED in text
    assert 'id="board-cases"' in text
    assert CASE_TITLE in text and reverse("cases:case_detail", kwargs={"case_id": case.public_id}) in text

    # the outside participant is still told to ask the host, and not led to cases they cannot open
    text = _client(client_as, consultant, org_a).get(_page(board)).content.decode()
    assert YOURS_ENDED in text and "ask the host" in text and STAFF_ENDED not in text


def test_staff_who_took_no_part_are_told_the_participants_access_ended(
        world, org_a, clinician_a, client_as, django_capture_on_commit_callbacks):
    board, host, _consultant, coordinator, case, _study, _attachment = world
    _start_and_end(board, host, django_capture_on_commit_callbacks)
    text = _client(client_as, clinician_a, org_a).get(_page(board)).content.decode()
    assert THEIRS_ENDED in text and YOURS_ENDED not in text
    assert CASE_TITLE in text  # their role still opens the case
    # a coordinator participant sees the case's status by role, never its images
    assert not policy.can(coordinator, Action.VIEW_IMAGES, case)
    assert policy.can(coordinator, Action.VIEW_CASE, case)


def test_a_participant_whose_membership_ended_no_longer_sees_the_ended_board(
        world, org_a, admin_a, client_as, django_capture_on_commit_callbacks):
    board, host, consultant, _coordinator, _case, _study, _attachment = world
    _start_and_end(board, host, django_capture_on_commit_callbacks)
    assert client_as(consultant).get(_page(board)).status_code == 200
    membership_update(membership=Membership.objects.get(user=consultant, organization=org_a), by=admin_a,
                      role=Role.EXTERNAL_CONSULTANT, is_active=False)

    assert client_as(consultant).get(_page(board)).status_code == 404
    denial = AuditEvent.objects.get(action="access.denied", actor=consultant)
    assert (denial.organization_id, denial.target_type, denial.target_id) == (
        org_a.pk, "boardsession", str(board.public_id))


def test_others_still_do_not_see_an_ended_board(world, org_a, org_b, client_as, django_capture_on_commit_callbacks):
    board, host, _consultant, _coordinator, _case, _study, _attachment = world
    bystander = member(org_a, Role.EXTERNAL_CONSULTANT, email="other.ext@stmarys.example")  # no participant
    outsider = member(org_b, Role.CLINICIAN, email="dr.beta@beta.example")
    _start_and_end(board, host, django_capture_on_commit_callbacks)
    for person, org in ((bystander, org_a), (outsider, org_b)):
        client = _client(client_as, person, org)
        assert client.get(_page(board)).status_code == 404
        assert TITLE not in client.get(reverse("cases:board_list")).content.decode()


def test_a_scheduled_boards_participant_still_does_not_see_it(world, org_a, client_as):
    """Nothing was given yet: as before, a participant sees a board once its meeting starts."""
    board, _host, consultant, _coordinator, _case, _study, _attachment = world
    assert client_as(consultant).get(_page(board)).status_code == 404


def test_two_organizations_an_outside_participant_opens_it_and_staff_are_asked_to_switch(
        world, org_a, org_b, client_as, django_capture_on_commit_callbacks):
    """Someone who is staff of Beta and an invited consultant of Alpha is not staff of Alpha:
    nothing to switch to, its ended board opens under Beta's header as it did while live. Someone
    who is staff of both, working in Beta, is asked to switch first, as for any of Alpha's boards."""
    board, host, _consultant, _coordinator, _case, _study, _attachment = world
    guest = member(org_b, Role.CLINICIAN, email="guest@beta.example")
    MembershipFactory(user=guest, organization=org_a, role=Role.EXTERNAL_CONSULTANT)
    both = member(org_b, Role.CLINICIAN, email="both@beta.example")
    MembershipFactory(user=both, organization=org_a, role=Role.CLINICIAN)
    board.participants.add(guest, both)
    _start_and_end(board, host, django_capture_on_commit_callbacks)

    page = _client(client_as, guest, org_b).get(_page(board))
    text = page.content.decode()
    assert page.status_code == 200 and SWITCH_NEEDED not in text and YOURS_ENDED in text

    page = _client(client_as, both, org_b).get(_page(board))
    text = page.content.decode()
    assert page.status_code == 200 and SWITCH_NEEDED in text and TITLE not in text
    page = _client(client_as, both, org_a).get(_page(board))
    # staff of Alpha: their role still opens the board's cases, nobody to ask
    assert page.status_code == 200 and YOURS_ENDED not in page.content.decode()
    assert STAFF_ENDED in page.content.decode()
