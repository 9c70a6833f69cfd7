"""seed_demo shows cases: the Northwind chest CT case with its context and notes, a second case
and a scheduled tumor board; running it twice makes no duplicates."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.accounts.models import User
from apps.cases.demo import BOARD_TITLE, DEMO_CASE_TITLE, DEMO_MRN
from apps.cases.models import BoardSession, BoardState, Case, CaseNote, Patient

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_cases_notes_and_a_scheduled_board_idempotently():
    call_command("seed_demo", stdout=io.StringIO())
    counts = (Case.objects.count(), CaseNote.objects.count(), BoardSession.objects.count(), Patient.objects.count())
    call_command("seed_demo", stdout=io.StringIO())
    assert (Case.objects.count(), CaseNote.objects.count(), BoardSession.objects.count(),
            Patient.objects.count()) == counts

    case = Case.objects.get(organization__slug="northwind", title=DEMO_CASE_TITLE)
    assert case.patient.mrn == DEMO_MRN
    assert case.referring_question and case.referred_by and case.service_line
    assert case.notes.count() >= 3 and case.notes.filter(kind="report").exists()
    assert Case.objects.filter(organization__slug="northwind").count() >= 2
    assert not Case.objects.filter(organization__slug="harbor").filter(title=DEMO_CASE_TITLE).exists()

    board = BoardSession.objects.get(title=BOARD_TITLE)
    assert board.state == BoardState.SCHEDULED and board.host.email == "radiologist@northwind.example"
    assert set(board.participants.values_list("email", flat=True)) == {
        "consultant@northwind.example", "clinician@northwind.example"}
    assert case in board.cases.all() and board.cases.count() >= 2
    assert 5 <= board.review_days <= 7


def test_seed_demo_gives_harbor_valley_a_case_of_its_own_with_a_study(client):
    """The Spanish-speaking demo clinician of Harbor Valley lands on a case list with a case on it,
    its study ready; Northwind's people never see it."""
    from apps.cases.demo import HARBOR_CASE

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    case = Case.objects.get(organization__slug="harbor")  # one, after two runs
    assert case.title == HARBOR_CASE["title"] and case.notes.count() == 1
    assert [s.is_ready for s in case.studies.all()] == [True]
    client.force_login(case.responsible_clinician)
    page = client.get("/cases/").content.decode()
    assert '<html lang="es">' in page and HARBOR_CASE["title"] in page
    client.force_login(User.objects.get(email="clinician@northwind.example"))
    assert HARBOR_CASE["title"] not in client.get("/cases/").content.decode()
    assert client.get(f"/cases/{case.public_id}/").status_code == 404
