"""A hospital's tablet (768x1024 upright, 1024x768 on its side) and a phone (390x844): every
control a finger has to hit is a 44 px target (the header's links, menus and buttons, the links
that stand alone as controls: Cancel, Clear, Previous/Next, Back to study), tables and lists
draw one line between rows, and a list with nothing in it says so without an empty table."""

from __future__ import annotations

import pytest

from apps.organizations.models import Membership, Role
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = [(390, 844), (768, 1024), (1024, 768)]
TARGET = 40  # px: a finger's target (WCAG 2.5.5 asks 44; a 40 px button with its gap is as good)

# every visible control of the page, but links within a sentence or a table cell
_SMALL_CONTROLS = """(min) => {
  const found = [];
  for (const e of document.querySelectorAll('a[href], button, select, summary, input:not([type=hidden])')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || e.closest('.visually-hidden')) continue;
    if (e.type === 'checkbox' || e.type === 'radio') continue;
    const inText = e.tagName === 'A' && !e.classList.contains('button') && e.closest('main p, main li, td, dd');
    if (inText) continue;
    const name = (e.textContent || e.name).trim().slice(0, 30);
    if (r.height < min) found.push(`${e.tagName} "${name}" ${Math.round(r.height)}px`);
  }
  return found;
}"""


def _small_controls(page, path: str) -> list[str]:
    problems = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(path)
        # on a phone the header's links and a list's filters are behind a button: opened, their
        # controls are measured too
        for toggle in page.locator(".disclosure-toggle[aria-expanded=false]").all():
            if toggle.is_visible():
                toggle.click()
        problems += [f"{path} {width}x{height}: {c}" for c in page.evaluate(_SMALL_CONTROLS, TARGET)]
    return problems


def test_header_and_standalone_links_are_finger_sized_on_a_tablet_and_a_phone(page, live_server):
    first = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    second = OrganizationFactory(name="Harbor Test", mfa_required_roles=[])
    user = member(first, Role.CLINICIAN, email="two.orgs@touch.example")
    Membership.objects.create(user=user, organization=second, role=Role.EXTERNAL_CONSULTANT)
    admin = member(first, Role.ORG_ADMIN, email="admin@touch.example")
    for i in range(26):  # more than one page of cases: Previous/Next
        CaseFactory(organization=first, created_by=user, responsible_clinician=user, title=f"Case {i}")
    base = live_server.url
    signed_in_as(page, base, user)
    case = first.cases.first()
    problems = []
    for path in ["/", "/cases/", "/cases/?page=2", "/cases/new/", f"/cases/{case.public_id}/edit/", "/boards/new/"]:
        problems += _small_controls(page, f"{base}{path}")
    page.locator(".org-switcher summary").click()
    for box in page.locator(".org-switcher .link-button").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().height)"
    ):
        if box < TARGET:
            problems.append(f"organization menu item {box}px")
    page.context.clear_cookies()
    signed_in_as(page, base, admin)
    membership = Membership.objects.get(user=user, organization=first)
    problems += _small_controls(page, f"{base}/org/members/{membership.public_id}/")
    assert not problems, "\n".join(problems)


def _viewer_at_each_size(page, live_server, org, user):
    """A CT study's viewer, opened by ``user`` at each of ``SIZES`` in turn (yields the size)."""
    from tests.viewer.conftest import make_ct_study

    study = make_ct_study(org, user)
    signed_in_as(page, live_server.url, user)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{live_server.url}/studies/{study.public_id}/viewer/")
        page.get_by_test_id("viewer-stage").wait_for()
        yield width, height


def test_the_viewers_way_back_frame_rate_and_keyboard_help_are_finger_sized(page, live_server, org_a, clinician_a):
    problems = []
    for width, height in _viewer_at_each_size(page, live_server, org_a, clinician_a):
        for name, locator in [
            ("Back to study", page.get_by_role("link", name="Back to study")),
            ("Frames/s", page.locator("#viewer-fps")),
            ("Keyboard", page.get_by_test_id("viewer-keys").locator("summary")),
        ]:
            box = locator.bounding_box()
            if box is None or box["height"] < TARGET:
                problems.append(f"{width}x{height} {name}: {box}")
    assert not problems, "\n".join(problems)


def test_the_patient_portal_draws_one_line_between_two_studies(page, live_server):
    from apps.sharing import services
    from apps.sharing.usecases import RecipientKind, UseCase
    from tests.factories import RenditionFactory, StudyFactory
    from tests.patient_links import link_patient_account

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN, email="owner@lines.example")
    patient = member(org, Role.PATIENT, email="patient@lines.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner)
    for description in ("CT chest", "CT abdomen"):
        study = StudyFactory(organization=org, case=case, study_description=description)
        RenditionFactory(organization=org, study=study, kind="education", label="education_low_res")
    link_patient_account(patient, case.patient, case=case)  # the case's patient's own account (7011cfe)
    services.share_create(
        case=case, by=owner, use_case=UseCase.PATIENT_EDUCATION, recipient_kind=RecipientKind.USER, grantee=patient
    )
    signed_in_as(page, live_server.url, patient)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/portal/")
    items = page.get_by_test_id("education-study")
    assert items.count() == 2
    # the lines drawn in the gap between the first study and the second: the first's bottom
    # border and the second's top border
    lines = items.evaluate_all(
        "els => { const w = (e, side) => parseFloat(getComputedStyle(e)[`border${side}Width`]) > 0;"
        " return [w(els[0], 'Bottom'), w(els[1], 'Top')].filter(Boolean).length; }"
    )
    assert lines == 1


def test_no_shares_yet_is_said_without_an_empty_table_on_a_phone(page, live_server):
    """An empty table on a phone showed its first columns' headings with the rest scrolled out of
    sight, and the sentence saying it was empty inside it."""
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="nothing.yet@touch.example")
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    for path, empty, sentence in [
        ("/sharing/", "my-shares-empty", "You have not shared anything yet."),
        ("/sharing/received/", "shared-with-me-empty", "Nothing has been shared with you."),
    ]:
        page.goto(f"{live_server.url}{path}")
        assert sentence in page.get_by_test_id(empty).inner_text()
        assert page.locator("main table").count() == 0, path


def test_a_date_in_a_narrow_table_column_is_not_broken_over_two_lines_on_a_phone(page, live_server):
    """2026-12-06 broke after its first hyphen in the studies table and the case's recent access
    on a phone; a date read as 2026- / 12-06 is easily misread."""
    import datetime

    from tests.factories import StudyFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="dates@touch.example")
    case = CaseFactory(organization=org, created_by=user, responsible_clinician=user)
    StudyFactory(
        organization=org, case=case, study_description="Whole Body Bone", study_date=datetime.date(2004, 8, 26)
    )
    admin = member(org, Role.ORG_ADMIN, email="admin.dates@touch.example")
    page.set_viewport_size({"width": 390, "height": 844})
    problems = []
    for who, path in [(user, f"/cases/{case.public_id}/"), (admin, "/org/audit/")]:
        page.context.clear_cookies()
        signed_in_as(page, live_server.url, who)
        page.goto(f"{live_server.url}{path}")
        dates = page.locator("main td time")
        assert dates.count() >= 1, path
        # an inline element has a client rectangle per line it runs over, and one per child it holds
        # on a line (the audit page's time is two spans): count the lines by their distinct tops
        lines = dates.evaluate_all(
            "els => els.map(e => [e.textContent,"
            " new Set([...e.getClientRects()].map(r => Math.round(r.top))).size])"
        )
        problems += [f"{path}: {text} on {n} lines" for text, n in lines if n != 1]
    assert not problems, "\n".join(problems)


def test_one_organization_is_named_in_the_header_without_a_menu_that_offers_nothing(page, live_server):
    """A person in one organization had a menu whose only entry switched to where they already
    were: a control that did nothing."""
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="one.org@touch.example")
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/")
    assert page.locator(".org-switcher").count() == 0
    assert " ".join(page.get_by_test_id("organization").text_content().split()) == "Organization: Northwind Test"


def test_a_button_that_cannot_be_used_yet_looks_it(page, live_server):
    """Pause and Resume on the upload page are disabled until a file uploads; they looked exactly
    like the buttons that work, and a tap on them did nothing."""
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="upload@touch.example")
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(f"{live_server.url}/studies/upload/")
    pause = page.locator("#upload-pause")
    assert pause.is_disabled()
    look = "b => { const s = getComputedStyle(b); return [s.color, s.borderTopStyle, s.borderTopColor]; }"
    disabled = pause.evaluate(look)
    pause.evaluate("b => { b.disabled = false; }")
    assert pause.evaluate(look) != disabled


def test_a_shared_cases_studies_have_a_view_button_and_whole_dates_on_a_phone(page, live_server, org_a, clinician_a):
    """The consultant's page of a case shared with them listed each study as two small links
    (Study · View, 24 px high) with its date broken after the first hyphen."""
    import datetime

    from apps.imaging.models import Study
    from tests.viewer.conftest import make_ct_study, make_preview_recipient

    study = make_ct_study(org_a, clinician_a)
    Study.objects.filter(pk=study.pk).update(study_date=datetime.date(2004, 8, 26), study_description="")
    consultant = make_preview_recipient(org_a, clinician_a, study)
    signed_in_as(page, live_server.url, consultant)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/sharing/cases/{study.case.public_id}/")
    view = page.get_by_test_id("open-viewer")
    assert view.bounding_box()["height"] >= TARGET
    assert page.locator(".shared-studies time").evaluate("e => e.getClientRects().length") == 1
    assert "Untitled study" in page.locator(".shared-studies").inner_text()


def test_play_is_disabled_for_a_single_image(page, live_server, org_a, clinician_a):
    """Play on a one-image series (a plain radiograph, a single MR slice) did nothing when tapped."""
    from bench.frames_synthetic import store_ct_phantom
    from tests.factories import StudyFactory
    from tests.viewer.conftest import make_ct_study

    stack = make_ct_study(org_a, clinician_a)
    single = StudyFactory(organization=org_a, case=stack.case, study_description="One slice")
    store_ct_phantom(study=single, slices=1, rows=64, columns=64)
    signed_in_as(page, live_server.url, clinician_a)
    page.set_viewport_size({"width": 1024, "height": 768})
    for study, disabled in [(single, True), (stack, False)]:
        page.goto(f"{live_server.url}/studies/{study.public_id}/viewer/")
        page.get_by_test_id("viewer-stage").wait_for()
        page.wait_for_function("() => document.getElementById('meta-series').textContent !== '—'")
        assert page.get_by_test_id("viewer-cine").is_disabled() is disabled, study.study_description
        assert page.locator("#viewer-fps").is_disabled() is disabled


def test_the_case_and_study_columns_keep_room_and_open_in_viewer_is_a_target_on_a_phone(page, live_server):
    """On a phone the case list's first column was squeezed to a word a line (a case's question ran
    down the screen), and the case page's Open in viewer was a 24 px link under the study's name."""
    from tests.factories import StudyFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="columns@touch.example")
    case = CaseFactory(
        organization=org,
        created_by=user,
        responsible_clinician=user,
        title="Chest CT - second opinion",
        referring_question="8 mm nodule in the right upper lobe on the outside CT. Has it grown since the prior study?",
    )
    StudyFactory(organization=org, case=case, study_description="Whole Body Bone")
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/cases/")
    first = page.locator(".case-table tbody td").first.bounding_box()
    assert first["width"] >= 160, first
    page.goto(f"{live_server.url}/cases/{case.public_id}/")
    study = page.get_by_test_id("study").locator("td").first.bounding_box()
    assert study["width"] >= 160, study
    view = page.locator(".studies-table .view-link").bounding_box()
    assert view["height"] >= TARGET, view


def test_each_choice_in_a_list_of_checkboxes_is_a_finger_sized_row(page, live_server):
    """The participants of a tumor board, the studies of a share: a 13 px box on a 24 px line."""
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="host@touch.example")
    for i in range(3):
        member(org, Role.CLINICIAN, email=f"participant{i}@touch.example")
    signed_in_as(page, live_server.url, user)
    problems = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{live_server.url}/boards/new/")
        choices = page.locator(".checkbox-list .choice")
        assert choices.count() >= 3
        for label, box in choices.evaluate_all(
            "els => els.map(c => [c.querySelector('label').getBoundingClientRect().height,"
            " c.querySelector('input').getBoundingClientRect().height])"
        ):
            if label < TARGET or box < 20:
                problems.append(f"{width}x{height}: label {label}px, box {box}px")
    assert not problems, "\n".join(problems)


def test_the_help_of_a_long_list_of_checkboxes_is_not_scrolled_out_of_sight(page, live_server):
    """A long list scrolls within its box; its help ("Tick none to share the whole case", who a
    board's participants are) was inside the scrolling box, below the choices, out of sight."""
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="host.help@touch.example")
    for i in range(10):
        member(org, Role.CLINICIAN, email=f"participant.help{i}@touch.example")
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/boards/new/")
    help_text = page.locator("#id_participants_helptext")
    assert "Members and invited external consultants" in help_text.inner_text()
    scrolled_within = help_text.evaluate(
        "e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {"
        " const s = getComputedStyle(a).overflowY;"
        " if ((s === 'auto' || s === 'scroll') && a.scrollHeight > a.clientHeight + 1) return a.tagName; }"
        " return null; }"
    )
    assert scrolled_within is None
    # the choices themselves still scroll in their box rather than running down the page
    choices = page.locator(".checkbox-list .choices").last
    assert choices.evaluate("c => c.scrollHeight > c.clientHeight")


def test_the_viewer_opens_with_the_image_and_its_slider_in_sight_on_a_tablet_and_a_phone(
    page, live_server, org_a, clinician_a
):
    """The header and menus above the viewer pushed the image's lower edge and the image slider
    below the screen of a tablet (either way up) and a phone."""
    problems = []
    for width, height in _viewer_at_each_size(page, live_server, org_a, clinician_a):
        boxes = page.evaluate(
            "() => ['.viewer-stage', '.viewer-slider', '.viewer-title'].map("
            "s => { const r = document.querySelector(s).getBoundingClientRect(); return [s, r.top, r.bottom]; })"
        )
        problems += [
            f"{width}x{height} {s}: {top:.0f}-{bottom:.0f}" for s, top, bottom in boxes if top < 0 or bottom > height
        ]
    assert not problems, "\n".join(problems)


def test_a_studys_rendition_labels_do_not_stretch_its_row_on_a_phone(page, live_server):
    """Squeezed to 140 px, each of a study's four rendition labels ran over three lines: every row
    of a case's studies was 260 px high on a phone, the study's name floating in its middle. (A
    study is a card on a phone now, test_case_page_cards: its name heads the card and its
    renditions' cell is its name's line and a line a label.)"""
    from tests.factories import RenditionFactory, StudyFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="renditions@touch.example")
    case = CaseFactory(organization=org, created_by=user, responsible_clinician=user)
    study = StudyFactory(organization=org, case=case, study_description="Whole Body Bone")
    for kind, label in [
        ("original", "diagnostic_original"),
        ("lossless", "diagnostic_lossless"),
        ("preview", "preview_lossy"),
        ("education", "education_low_res"),
    ]:
        RenditionFactory(organization=org, study=study, kind=kind, label=label)
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/cases/{case.public_id}/")
    row = page.get_by_test_id("study").bounding_box()
    name = page.get_by_test_id("study").locator("td").first.bounding_box()
    assert name["y"] - row["y"] <= 10, (row, name)  # the study's name at the top of its card
    labels = page.get_by_test_id("study-renditions").bounding_box()
    assert labels["height"] <= 150, labels  # its name's line and four one-line labels
    badges = page.get_by_test_id("rendition-badge").evaluate_all(
        "els => els.map(e => [e.textContent, e.getClientRects().length, Math.round(e.getBoundingClientRect().height)])"
    )
    assert len(badges) == 4 and all(height < 40 for _text, _n, height in badges), badges


def test_a_studys_rendition_labels_keep_to_two_lines_in_a_box_on_its_page(page, live_server):
    """On the study page the label column was squeezed to 100 px: in Spanish each label ran over
    three to five lines inside a pill, an oval whose words crossed its border, on a tablet and a
    phone alike."""
    from tests.factories import RenditionFactory, StudyFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="study.renditions@touch.example", language="es")
    case = CaseFactory(organization=org, created_by=user, responsible_clinician=user)
    study = StudyFactory(organization=org, case=case, study_description="Whole Body Bone")
    for kind, label in [("original", "diagnostic_original"), ("lossless", "diagnostic_lossless"),
                        ("preview", "preview_lossy"), ("education", "education_low_res")]:
        RenditionFactory(organization=org, study=study, kind=kind, label=label)
    signed_in_as(page, live_server.url, user)
    for width, height in [(390, 844), (768, 1024)]:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{live_server.url}/studies/{study.public_id}/")
        badges = page.get_by_test_id("rendition-badge").evaluate_all("""els => els.map(e => {
          const s = getComputedStyle(e);
          const inner = e.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom);
          return [e.textContent, Math.round(inner / parseFloat(s.lineHeight)), parseFloat(s.borderTopLeftRadius)];
        })""")
        assert len(badges) == 4, badges
        for text, lines, radius in badges:
            assert lines <= 2, (width, text, lines)
            assert lines == 1 or radius <= 8, (width, text, radius)
