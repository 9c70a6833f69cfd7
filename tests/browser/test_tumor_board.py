"""A tumor board in three browsers: the host starts the meeting; two participants (an external
consultant, and a clinician of another hospital invited as an external consultant) open the case
page and the same study; the host ends the meeting; both participants are refused on their next
click. Policy reads grants on every request, so nothing cached lets them in."""

from __future__ import annotations

import re

import pytest
from django.urls import NoReverseMatch, reverse
from playwright.sync_api import expect

from apps.cases import services
from apps.cases.models import BoardState, CaseNote
from apps.organizations.models import Role
from tests.browser.conftest import _only_local, sign_in
from tests.factories import (
    AttachmentFactory,
    CaseFactory,
    MembershipFactory,
    OrganizationFactory,
    StudyFactory,
    member,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _new_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    return context, context.new_page()


@pytest.fixture
def board_world(db):
    # about boards, not sign-in: no role needs a second factor here
    org = OrganizationFactory(name="Northwind Test", slug="northwind-test", mfa_required_roles=[])
    other = OrganizationFactory(name="Riverside Test", slug="riverside-test", mfa_required_roles=[])
    host = member(org, Role.RADIOLOGIST, email="host@northwind.test", full_name="Harper Host")
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@outside.test", full_name="Casey Outside")
    visitor = member(other, Role.CLINICIAN, email="visitor@riverside.test", full_name="Vic Visitor")
    MembershipFactory(user=visitor, organization=org, role=Role.EXTERNAL_CONSULTANT)  # invited external
    case = CaseFactory(organization=org, title="Chest CT board case",
                       referring_question="Has the right upper lobe nodule grown?")
    study = StudyFactory(organization=org, case=case, study_description="CT chest with contrast", modalities="CT")
    CaseNote.objects.create(organization=org, case=case, author=host, kind="report",
                            body="8 mm nodule, smooth margins; compare with the prior study.")
    AttachmentFactory(organization=org, case=case, filename="radiology-report.pdf")
    board = services.board_create(organization=org, by=host, host=host, title="Thoracic board (test)",
                                  meeting_at=case.created_at, review_days=7, cases=[case],
                                  participants=[consultant, visitor])
    return board, host, (consultant, visitor), case, study


def test_host_starts_participants_view_host_ends_participants_refused(browser, live_server, board_world,
                                                                     output_dir):
    board, host, participants, case, study = board_world
    base = live_server.url
    board_path = reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})
    try:
        study_path = reverse("imaging:study_detail", kwargs={"study_id": study.public_id})
    except NoReverseMatch:
        pytest.skip("the imaging app's study page (imaging:study_detail) is not there yet")
    contexts = []
    try:
        # the host starts the meeting
        ctx, host_page = _new_page(browser)
        contexts.append(ctx)
        sign_in(host_page, base, host.email, then=board_path)
        host_page.get_by_role("button", name="Start meeting").click()
        expect(host_page.get_by_test_id("board-state")).to_have_text("Live")
        board.refresh_from_db()
        assert board.state == BoardState.LIVE

        # each participant opens the board, the case page and the study
        pages, seen = [], []
        for person in participants:
            ctx, page = _new_page(browser)
            contexts.append(ctx)
            sign_in(page, base, person.email, then=board_path)
            page.get_by_role("link", name=case.title).click()
            page.wait_for_url(re.compile(re.escape(str(case.public_id))))
            assert page.get_by_test_id("clinical-question").inner_text() == case.referring_question
            notes = page.locator(".timeline .note-body").all_inner_texts()
            documents = page.get_by_test_id("attachment").all_inner_texts()
            page.get_by_role("link", name="CT chest with contrast", exact=True).click()
            page.wait_for_url(f"{base}{study_path}")
            assert page.locator("main").inner_text()  # the study page rendered
            seen.append((page.url, notes, [d.split(" · ")[0] for d in documents]))
            page.go_back()
            page.wait_for_url(re.compile(re.escape(str(case.public_id))))
            pages.append(page)
        # everyone sees the same study version, the same report and the same notes
        assert seen[0] == seen[1]
        assert seen[0][1] == ["8 mm nodule, smooth margins; compare with the prior study."]
        assert seen[0][2] == ["radiology-report.pdf"]
        pages[0].screenshot(path=str(output_dir / "tumor-board-participant.png"), full_page=True)

        # the host ends the meeting
        # asked twice: ending takes everyone's access away at once
        host_page.get_by_test_id("end-meeting").locator("summary").click()
        expect(host_page.get_by_test_id("board-state")).not_to_have_text("Ended")
        host_page.get_by_role("button", name="End the meeting now").click()
        expect(host_page.get_by_test_id("board-state")).to_have_text("Ended")

        # each participant's next click is refused: the study link on the case page still on screen
        for page in pages:
            with page.expect_response(lambda r: r.url.endswith(study_path)) as response:
                page.get_by_role("link", name="CT chest with contrast", exact=True).click()
            assert response.value.status in (403, 404)
            expect(page.locator("main")).not_to_contain_text("CT chest with contrast")
            # and the case page itself is gone too
            reload = page.goto(f"{base}{reverse('cases:case_detail', kwargs={'case_id': case.public_id})}")
            assert reload.status == 404
        pages[1].screenshot(path=str(output_dir / "tumor-board-refused.png"), full_page=True)
    finally:
        for ctx in contexts:
            ctx.close()


def test_case_pages_fit_a_phone_and_label_every_control(page, live_server, board_world, output_dir):
    board, host, _participants, case, _study = board_world
    base = live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    paths = [reverse("cases:case_list"), reverse("cases:case_detail", kwargs={"case_id": case.public_id}),
             reverse("cases:case_create"), reverse("cases:board_list"), reverse("cases:board_create"),
             reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})]
    sign_in(page, base, host.email, then=paths[0])
    for path in paths:
        page.goto(f"{base}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name)""")
        assert unlabeled == [], f"{path}: controls without a label: {unlabeled}"
    page.goto(f"{base}{paths[1]}")
    page.screenshot(path=str(output_dir / "case-page-phone.png"), full_page=True)
    # by keyboard: Tab reaches the note form and a note can be added without a mouse
    page.get_by_label("Note", exact=True).focus()
    page.keyboard.type("Added by keyboard.")
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Added by keyboard." in page.locator(".timeline").inner_text()


# --- the board form's searched lists ----------------------------------------------------------

@pytest.fixture
def many_cases(db):
    """An organization with more open cases and consultants than the board form draws."""
    from apps.core.forms import CHOICES_SHOWN

    org = OrganizationFactory(name="Northwind Test", slug="northwind-test", mfa_required_roles=[])
    host = member(org, Role.RADIOLOGIST, email="host@northwind.test", full_name="Harper Host")
    for i in range(CHOICES_SHOWN + 10):
        CaseFactory(organization=org, title=f"Chest CT {i:03d}")
    wanted = CaseFactory(organization=org, title="Zygoma fracture review")
    for i in range(15):
        member(org, Role.EXTERNAL_CONSULTANT, full_name=f"Consultant {i:02d}")
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="zoe@outside.test", full_name="Zoe Outside")
    return host, wanted, consultant


def _tablet(browser, *, script: bool):
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="en-US", has_touch=True,
                                  java_script_enabled=script)
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    return context, context.new_page()


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
def test_a_board_finds_ticks_and_keeps_a_case_beyond_those_drawn_on_a_tablet(browser, live_server, many_cases,
                                                                            output_dir, script):
    """A case beyond the first drawn is found by the list's search (typed, with the script;
    the Search button, without), ticked, kept ticked through the next search, and saved."""
    from apps.cases.models import BoardSession
    from tests.browser.conftest import signed_in_as

    host, wanted, consultant = many_cases
    context, page = _tablet(browser, script=script)
    try:
        signed_in_as(page, live_server.url, host)
        page.goto(f"{live_server.url}{reverse('cases:board_create')}")
        page.get_by_label("Title").fill("Maxillofacial board")
        page.get_by_label("Meeting time", exact=False).fill("2030-01-15T16:00")
        cases = page.get_by_role("group", name="Cases")
        found = cases.get_by_test_id("choices-found")
        expect(found).to_have_text("Showing 50 of 61; search to find the others.")
        expect(cases.locator(".choice")).to_have_count(50)
        expect(cases.get_by_label("Zygoma fracture review")).to_have_count(0)

        def search(group, text, *, enter=False):
            box = group.get_by_label("Find in this list")
            box.fill(text)  # with the script, the matches come as it is typed
            if enter:  # with the script, Enter in the box searches, and saves nothing
                box.press("Enter")
            elif not script:  # the form drawn again, as sent
                group.get_by_role("button", name="Search").click()
                page.wait_for_load_state()

        search(cases, "zygoma")
        expect(found).to_have_text("1 choice matches the search.")
        cases.get_by_label("Zygoma fracture review").check()
        search(cases, "chest ct 05")
        expect(cases.locator(".choice")).to_have_count(11)  # 050-059, and the ticked one
        expect(cases.get_by_label("Zygoma fracture review")).to_be_checked()
        participants = page.get_by_role("group", name="Participants")
        search(participants, "outside.test", enter=script)
        expect(participants.get_by_test_id("choices-found")).to_have_text("1 choice matches the search.")
        participants.get_by_label("Zoe Outside").check()
        expect(page.get_by_label("Title")).to_have_value("Maxillofacial board")  # typed, kept
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        page.screenshot(path=str(output_dir / f"board-form-search-tablet-{'script' if script else 'no-script'}.png"),
                        full_page=True)
        if script:  # Enter in a field other than a search box saves, as on any form
            page.get_by_label("Title").press("Enter")
        else:
            page.get_by_role("button", name="Schedule board").click()
        expect(page.get_by_test_id("board-state")).to_have_text("Scheduled")
        board = BoardSession.objects.get()
        assert list(board.cases.all()) == [wanted] and list(board.participants.all()) == [consultant]
    finally:
        context.close()


@pytest.fixture
def fifteen_clinicians(db, monkeypatch):
    """An organization with 15 clinicians, more than a one-choice list of members draws (12 here)."""
    from apps.core import forms as core_forms

    monkeypatch.setattr(core_forms, "CHOICES_SHOWN", 12)
    org = OrganizationFactory(name="Northwind Test", slug="northwind-test", mfa_required_roles=[])
    for i in range(15):
        member(org, Role.CLINICIAN, full_name=f"Clinician {i:02d}")
    return org


def _tablet_at(browser, live_server, user, path: str, *, script: bool):
    """A tablet (with or without the script), ``user`` signed in, at ``path``."""
    from tests.browser.conftest import signed_in_as

    context, page = _tablet(browser, script=script)
    try:
        signed_in_as(page, live_server.url, user)
        page.goto(f"{live_server.url}{path}")
    except Exception:
        context.close()
        raise
    return context, page


def _search_one(page, group, text: str, *, script: bool) -> None:
    """Search a one-choice list: typed (the script asks as it is typed), or typed and its Search
    button pressed (the form drawn again, as sent)."""
    group.get_by_label("Find in this list").fill(text)
    if not script:
        group.get_by_role("button", name="Search").click()
        page.wait_for_load_state()


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
def test_a_board_host_beyond_those_drawn_is_found_chosen_and_saved_on_a_tablet(browser, live_server, output_dir,
                                                                              script, fifteen_clinicians):
    """The host is one choice of a searched list (radio buttons), as the cases and participants
    are lists of several: the host chosen is drawn first, then some members who may host; one
    beyond those is found by the search (typed, with the script; the Search button, without),
    chosen, kept through the next search, and saved."""
    from apps.cases.models import BoardSession

    org = fifteen_clinicians
    me = member(org, Role.RADIOLOGIST, email="me@northwind.test", full_name="Harper Scheduler")
    wanted = member(org, Role.COORDINATOR, email="z.vandersnoot@northwind.test", full_name="Zoltana Vandersnoot")
    context, page = _tablet_at(browser, live_server, me, reverse("cases:board_create"), script=script)
    try:
        page.get_by_label("Title").fill("Hosted by a coordinator")
        page.get_by_label("Meeting time", exact=False).fill("2030-01-15T16:00")
        hosts = page.get_by_role("group", name="Host")
        expect(hosts.get_by_role("radio")).to_have_count(13)  # the user, chosen by default, and 12 more
        expect(hosts.get_by_role("radio", name="Harper Scheduler (me@northwind.test)")).to_be_checked()
        expect(hosts.get_by_test_id("choices-found")).to_have_text("Showing 12 of 16; search to find the others.")
        expect(hosts.get_by_label("Zoltana Vandersnoot", exact=False)).to_have_count(0)

        def search(text):
            _search_one(page, hosts, text, script=script)

        search("vandersnoot")
        expect(hosts.get_by_test_id("choices-found")).to_have_text("1 choice matches the search.")
        hosts.get_by_label("Zoltana Vandersnoot", exact=False).check()
        search("clinician 1")
        # the host chosen stays; the user, no longer chosen, goes with the earlier matches
        expect(hosts.get_by_role("radio")).to_have_count(6)  # the chosen, then Clinician 10-14
        expect(hosts.get_by_label("Zoltana Vandersnoot", exact=False)).to_be_checked()
        expect(page.get_by_label("Title")).to_have_value("Hosted by a coordinator")
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        page.get_by_role("button", name="Schedule board").click()
        expect(page.get_by_test_id("board-state")).to_have_text("Scheduled")
        assert BoardSession.objects.get().host == wanted
    finally:
        context.close()


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
def test_a_cases_responsible_clinician_is_found_chosen_and_cleared_on_a_tablet(browser, live_server, script,
                                                                              fifteen_clinicians):
    """The case form's responsible clinician is one choice of a searched list, as a board's host,
    that may be no one: "No one named yet" is drawn first and stays through every search (with
    the script, the list redrawn as the text is typed; without, by the Search button)."""
    from apps.cases.models import Case

    org = fifteen_clinicians
    me = member(org, Role.CLINICIAN, email="me@northwind.test", full_name="Harper Caseopener")
    wanted = member(org, Role.RADIOLOGIST, email="z.quillfeather@northwind.test", full_name="Zerelda Quillfeather")
    context, page = _tablet_at(browser, live_server, me, reverse("cases:case_create"), script=script)
    try:
        page.get_by_label("Patient's medical record number").fill("QF-0001")
        page.get_by_label("Patient's name (new patients only)").fill("Test^Patient")
        page.get_by_label("Title").fill("Wexcombe review")
        clinician = page.get_by_role("group", name="Responsible clinician")
        expect(clinician.get_by_role("radio")).to_have_count(13)  # no one, then 12
        expect(clinician.get_by_role("radio", name="No one named yet")).to_be_checked()

        def search(text):
            _search_one(page, clinician, text, script=script)

        search("quillfeather")
        expect(clinician.get_by_test_id("choices-found")).to_have_text("1 choice matches the search.")
        expect(clinician.get_by_role("radio")).to_have_count(2)  # no one stays, and the match
        clinician.get_by_label("Zerelda Quillfeather", exact=False).check()
        search("clinician 1")
        expect(clinician.get_by_test_id("choices-found")).to_have_text("5 choices match the search.")
        expect(clinician.get_by_role("radio")).to_have_count(7)  # no one, the chosen, Clinician 10-14
        expect(clinician.get_by_label("Zerelda Quillfeather", exact=False)).to_be_checked()
        expect(clinician.get_by_role("radio", name="No one named yet")).to_have_count(1)
        expect(page.get_by_label("Title")).to_have_value("Wexcombe review")
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        page.get_by_role("button", name="Create case").click()
        expect(page.get_by_role("heading", name="Wexcombe review")).to_be_visible()
        assert Case.objects.get().responsible_clinician == wanted
    finally:
        context.close()
