"""A viewer open when the tumor board that gave its access ended says that the meeting ended, not
that a share was revoked or expired, and its "back" link then leads somewhere its reader may go
(found by QA: "Back to study" led to a 404 once access had ended).

The refusal an open viewer stops on (the access check, a frame, a series' page) says
``"ended": "board"`` when the reader's own access to the case ended with a board's meeting (the
last of their grants on it to end is ``ended_with_board``, as the lists say); viewer.js then shows
``data-msg-board-ended``. The page gives the back link the address to take once access ends:
"Shared with me" for whoever is signed in (where the ended share is listed), none for a link
holder (the link is removed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from tests.factories import BoardSessionFactory, member, open_anonymous_link

pytestmark = pytest.mark.django_db


def _access(study) -> str:
    return reverse("viewer:access", kwargs={"study_id": study.public_id})


def _frame(study) -> str:
    return reverse("viewer:frame", kwargs={"instance_id": study.phantom_instances[0].public_id}) + "?frame=0"


def _series(study) -> str:
    instance = study.phantom_instances[0]
    return reverse("viewer:series_instances", kwargs={"study_id": study.public_id,
                                                      "series_id": instance.series.public_id}) + "?start=0"


def _viewer(study) -> str:
    return reverse("viewer:viewer", kwargs={"study_id": study.public_id})


@pytest.fixture
def participant(org_a):
    return member(org_a, Role.EXTERNAL_CONSULTANT, email="board-guest@outside.example")


@pytest.fixture
def live_board(org_a, clinician_a, ct_study, participant):
    from apps.cases import services

    board = BoardSessionFactory(organization=org_a, host=clinician_a)
    board.cases.add(ct_study.case)
    board.participants.add(participant)
    services.board_start(board=board, by=clinician_a)
    return board


def _refusals(client, study) -> list[dict]:
    """What the access check, a frame and a series' page answer: each must be a refusal."""
    answers = [client.get(url) for url in (_access(study), _frame(study), _series(study))]
    assert [a.status_code in (403, 404) for a in answers] == [True, True, True]
    return [a.json() for a in answers]


def test_a_viewer_refused_after_its_board_ended_is_told_the_meeting_ended(client_as, clinician_a, ct_study,
                                                                          participant, live_board):
    from apps.cases import services

    client = client_as(participant)
    assert client.get(_access(ct_study)).json() == {"access": True, "diagnostic": False}
    services.board_end(board=live_board, by=clinician_a)
    assert [body.get("ended") for body in _refusals(client, ct_study)] == ["board", "board", "board"]


@pytest.mark.parametrize("ending", ["revoked", "expired"])
def test_a_share_that_ended_otherwise_names_no_board(client_as, clinician_a, preview_recipient, ct_study, ending):
    from apps.sharing import services
    from apps.sharing.models import Grant

    if ending == "revoked":
        services.grants_revoke(grants=[preview_recipient.grant], by=clinician_a, reason="revoked by sharer")
    else:
        Grant.objects.filter(pk=preview_recipient.grant.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert [body.get("ended") for body in _refusals(client_as(preview_recipient), ct_study)] == [None] * 3


def test_the_last_access_to_end_decides(client_as, clinician_a, ct_study, participant, live_board):
    """A meeting that ended before a share that was revoked later: the share's end is what
    stopped the viewer; a share revoked before the meeting ended: the meeting's."""
    from apps.cases import services as cases
    from apps.sharing import services as sharing

    client = client_as(participant)
    earlier = sharing.grant_create(case=ct_study.case, grantee=participant, permissions=["view"], by=clinician_a,
                                   expires_at=timezone.now() + timedelta(hours=24))
    sharing.grants_revoke(grants=[earlier], by=clinician_a, reason="revoked by sharer")
    cases.board_end(board=live_board, by=clinician_a)
    assert _refusals(client, ct_study)[0].get("ended") == "board"
    later = sharing.grant_create(case=ct_study.case, grantee=participant, permissions=["view"], by=clinician_a,
                                 expires_at=timezone.now() + timedelta(hours=24))
    assert client.get(_access(ct_study)).status_code == 200
    sharing.grants_revoke(grants=[later], by=clinician_a, reason="revoked by sharer")
    assert [body.get("ended") for body in _refusals(client, ct_study)] == [None] * 3


def test_someone_else_is_told_nothing_of_a_board(client, client_as, admin_b, clinician_a, ct_study, live_board):
    from apps.cases import services

    services.board_end(board=live_board, by=clinician_a)
    for who in (client_as(admin_b), client):
        refused = who.get(_access(ct_study))
        assert refused.status_code == 404 and "ended" not in refused.json()


def test_the_back_link_leads_to_shared_with_me_once_access_ends(client_as, clinician_a, ct_study, participant,
                                                                live_board):
    from apps.cases import services

    client = client_as(participant)
    page = client.get(_viewer(ct_study)).content.decode()
    shared_with_me = reverse("sharing:shared_with_me")
    assert (f'<a data-ended-href="{shared_with_me}" data-ended-label="Shared with me" '
            f'href="{ct_study.get_absolute_url()}" data-testid="viewer-back">Back to study</a>') in page
    assert 'data-msg-board-ended="Your access to this study ended with the tumor board meeting.' in page
    services.board_end(board=live_board, by=clinician_a)
    assert client.get(ct_study.get_absolute_url()).status_code == 404  # where "Back to study" led
    assert client.get(shared_with_me).status_code == 200


def test_a_link_holders_way_back_once_access_ends_is_the_start_page(client, clinician_a, ct_study):
    """Their shared case is a 404 once the link is revoked: viewer.js then leads them to the
    site's start (data-ended-href), not nowhere (found by QA: the link went away with the image;
    the browser side: tests/browser/test_viewer_way_back.py)."""
    from apps.sharing import services as sharing
    from apps.sharing.usecases import RecipientKind, UseCase

    ct_study.organization.anonymous_links_enabled = True
    ct_study.organization.save()
    grant, _link, raw = sharing.share_create(case=ct_study.case, by=clinician_a, use_case=UseCase.CUSTOM,
                                             recipient_kind=RecipientKind.ANONYMOUS)
    assert open_anonymous_link(client, raw).status_code == 302
    page = client.get(_viewer(ct_study)).content.decode()
    back = reverse("sharing:shared_case", kwargs={"case_id": ct_study.case.public_id})
    start = reverse("dashboard")
    assert (f'<a data-ended-href="{start}" data-ended-label="Go to the start page" href="{back}" '
            'data-testid="viewer-back">') in page
    sharing.grants_revoke(grants=[grant], by=clinician_a, reason="revoked by sharer")
    access = client.get(reverse("viewer:access", kwargs={"study_id": ct_study.public_id}))
    assert access.status_code == 404 and access.json()["error"] == "gone"  # viewer.js follows data-ended-href
    assert client.get(back).status_code == 404  # where "Back to the shared case" led
    assert client.get(start).status_code == 302  # the start, which sends a visitor to sign in


def test_a_reader_still_holding_a_live_share_is_not_told_the_meeting_ended(client_as, clinician_a, ct_study,
                                                                           participant, live_board):
    """A reviewer: after the meeting ended, a live share of their own refused for another reason
    (the second factor it asks for) was called the meeting's end, sending the reader away from
    the fix. Someone who still holds a live share was refused for something else."""
    from apps.cases import services as cases
    from apps.sharing import services as sharing
    from apps.sharing.models import Grant

    client = client_as(participant)
    cases.board_end(board=live_board, by=clinician_a)
    grant = sharing.grant_create(case=ct_study.case, grantee=participant, permissions=["view"], by=clinician_a,
                                 expires_at=timezone.now() + timedelta(hours=24))
    assert client.get(_access(ct_study)).status_code == 200
    Grant.objects.filter(pk=grant.pk).update(mfa_required=True)
    refused = client.get(_access(ct_study))
    assert refused.status_code in (403, 404) and refused.json().get("ended") is None


def test_a_reader_of_a_revoked_link_is_not_told_the_meeting_ended(client_as, clinician_a, ct_study, participant,
                                                                  live_board):
    """A reviewer: signed in, a board participant whose meeting had ended opened an anonymous link
    to the case; its revocation stopped the viewer, which said the meeting ended. A reader of
    opened links is decided on them."""
    from apps.cases import services as cases
    from apps.sharing import services as sharing
    from apps.sharing.usecases import RecipientKind, UseCase

    ct_study.organization.anonymous_links_enabled = True
    ct_study.organization.save()
    client = client_as(participant)
    cases.board_end(board=live_board, by=clinician_a)
    grant, _link, raw = sharing.share_create(case=ct_study.case, by=clinician_a, use_case=UseCase.CUSTOM,
                                             recipient_kind=RecipientKind.ANONYMOUS)
    assert open_anonymous_link(client, raw).status_code == 302
    assert client.get(_access(ct_study)).status_code == 200
    sharing.grants_revoke(grants=[grant], by=clinician_a, reason="revoked by sharer")
    assert [body.get("ended") for body in _refusals(client, ct_study)] == [None] * 3
