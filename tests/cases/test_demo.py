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


def test_no_demo_case_warns_of_another_patients_images_but_the_one_that_says_it_does():
    """Found by QA: every seeded case warned that its images' patient ID is not the case's MRN
    (the brain MR's 98890234 against DEMO-0002, Harbor's 1CT1 against HV-0001, ...). The demo
    copies now carry their case's MRN; only ``ID_CHECK_CASE`` warns, on purpose, and says so. As
    the case page decides it (``case_page``, for the case's responsible clinician)."""
    from apps.cases.selectors import case_page, case_page_decisions

    call_command("seed_demo", stdout=io.StringIO())
    warned = {}
    for case in Case.objects.select_related("patient", "responsible_clinician"):
        user = case.responsible_clinician
        page = case_page(user=user, case=case, may=case_page_decisions(user=user, case=case))
        assert page.show_patient and page.studies.exists(), case.title
        warned[case.title] = (page.other_patient_studies, page.no_patient_id_studies)
    [(title, counts)] = [(title, n) for title, n in warned.items() if n != (0, 0)]
    assert "patient ID check" in title and counts == (1, 0), warned
    from apps.cases.demo import ID_CHECK_CASE

    assert title == ID_CHECK_CASE["title"] and "on purpose" in ID_CHECK_CASE["referring_question"]
