"""Keyboard and small-screen use, seen in Chromium: a table wider than the screen can be scrolled
from the keyboard and is named; the organization menu opens within a phone's screen; the focus
ring stands out on the page's white and grey as well as on the blue header. axe-core (vendored in
tests/browser/vendor/axe-core) finds no WCAG 2.x A/AA or best-practice violation on the pages added
for patients, study deletion, attaching a study to a case, the share review, the mail-down
warning, the step-up page and a phone's header menu and list filters, and the forms with searched
lists (case, tumor board, invitation), in English and Spanish, at a phone's and a tablet's width,
and none of them is wider than 320 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from apps.organizations.models import Membership, Role
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INK, FOCUS = "rgb(27, 31, 36)", "rgb(255, 191, 71)"


def _admin_with_members(page, live_server):
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@tables.example")
    for i in range(3):
        member(org, Role.CLINICIAN, email=f"clinician.number.{i}@a-long-hospital-domain.example")
    signed_in_as(page, live_server.url, admin)
    return admin


def test_a_table_wider_than_the_screen_is_a_named_region_scrolled_by_keyboard(page, live_server):
    """A study's de-identified exports on a phone (the members' list, Shared with me, the share
    page's table of templates and a case's studies are a card a row there now:
    test_list_pages_on_a_phone, test_shared_with_me_cards, test_share_form_kinds,
    test_case_page_cards)."""
    from tests.factories import DeidExportFactory, StudyFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    owner = member(org, Role.RADIOLOGIST, email="radiologist@accessibility.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner,
                       title="Chest CT - second opinion")
    study = StudyFactory(organization=org, case=case, study_description="CT chest")
    DeidExportFactory(organization=org, study=study, created_by=owner)
    signed_in_as(page, live_server.url, owner)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}{reverse('deid:study_exports', kwargs={'study_id': study.public_id})}")
    selector = ".table-wrap:has([data-testid=deid-export])"
    wrap = page.locator(selector)
    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")  # the table is wider
    assert wrap.get_attribute("tabindex") == "0" and wrap.get_attribute("role") == "region"
    # the table's caption
    assert wrap.get_attribute("aria-label") == "De-identified exports of this study"
    wrap.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => document.querySelector('{selector}').scrollLeft > 0")
    # on a wide screen the same table fits: no extra stop in the Tab order
    page.set_viewport_size({"width": 1400, "height": 900})
    page.wait_for_function(f"() => !document.querySelector('{selector}').hasAttribute('tabindex')")
    assert wrap.get_attribute("role") is None


def test_the_organization_menu_opens_within_a_phone_screen(page, live_server):
    first = OrganizationFactory(name="Northwind General Hospital", mfa_required_roles=[])
    second = OrganizationFactory(name="Harbor Valley Clinic", mfa_required_roles=[])
    user = member(first, Role.RADIOLOGIST, email="two.orgs@lightbox.example")
    Membership.objects.create(user=user, organization=second, role=Role.EXTERNAL_CONSULTANT)
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Menu").click()  # the header's menu, where the organization menu is
    page.locator(".org-switcher summary").click()
    menu = page.locator(".org-switcher ul")
    menu.wait_for()
    box = menu.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box


def test_the_focus_ring_has_a_dark_ring_on_the_page_and_a_yellow_one_on_the_header(page, live_server):
    _admin_with_members(page, live_server)
    page.goto(f"{live_server.url}/org/members/")
    page.keyboard.press("Tab")  # the skip link, then the header's links
    page.keyboard.press("Tab")
    header = page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                           " return [document.activeElement.closest('.site-header') !== null, s.outlineColor]; }")
    assert header == [True, FOCUS]
    page.locator("main a").first.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # focus by keyboard: :focus-visible applies
    ring = page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                         " return [document.activeElement.closest('main') !== null, s.outlineColor, s.boxShadow]; }")
    assert ring[0] and ring[1] == INK and FOCUS in ring[2], ring


def test_a_long_address_in_a_sentence_wraps_on_a_small_phone(page, live_server):
    """The invitation page names the invited address in its first sentence; at 320 px a long
    address widened the page (a sideways scroll for every line)."""
    from apps.accounts.services import invitation_create

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@wrap.example")
    _invitation, raw = invitation_create(organization=org, by=admin, role=Role.EXTERNAL_CONSULTANT,
                                         email="a.very.long.consultant.address@an-elsewhere-hospital.example")
    page.set_viewport_size({"width": 320, "height": 700})
    page.goto(f"{live_server.url}/invite/{raw}/")
    assert "a.very.long.consultant.address" in page.inner_text("main")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


# --- axe-core on the pages added for the patient portal, study deletion, the share review, the
# patients' refused page, the member page's mail warning, the step-up page, a refused form and a
# table wider than a phone: English and Spanish, at a phone's and a tablet's width, and no page
# wider than a 320 px screen. axe-core is the vendored copy in tests/browser/vendor/axe-core (no
# network in tests).

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
SIZES = [(390, 844), (768, 1024)]


def _axe_violations(page) -> list[str]:
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # evaluated by the DevTools protocol: the pages' Content-Security-Policy allows no inline script
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
                          ".then(r => r.violations.map(v => [v.id, v.impact, v.nodes.map(n => n.target.join(' '))]))",
                          AXE_TAGS)
    return [f"{rule} ({impact}): {', '.join(targets[:5])}" for rule, impact, targets in found]


def _check(page, user, open_page) -> None:
    """For English and Spanish (the user's language), open the page (``open_page(page)``), run axe
    at each size and check that nothing is wider than a 320 px screen."""
    from apps.accounts.models import User

    problems = []
    for language in ("en", "es"):
        User.objects.filter(pk=user.pk).update(language=language)
        page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
        open_page(page)
        page.wait_for_load_state("load")
        assert page.get_attribute("html", "lang") == language
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            problems += [f"{page.url} {language} {width}px {v}" for v in _axe_violations(page)]
        page.set_viewport_size({"width": 320, "height": 700})
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        if wide > 320:
            problems.append(f"{page.url} {language} 320px: the page is {wide} px wide")
    assert not problems, "\n".join(problems)


class _DownMailServer:
    """An e-mail backend whose server cannot be reached."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")


def test_the_patient_portal_and_the_patients_refused_page(page, live_server):
    from apps.sharing import services
    from apps.sharing.usecases import RecipientKind, UseCase
    from tests.factories import CaseFactory, RenditionFactory, StudyFactory
    from tests.patient_links import link_patient_account

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN, email="owner@portal.example", full_name="Casey Clinician")
    patient = member(org, Role.PATIENT, email="patient@portal.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner)
    study = StudyFactory(organization=org, case=case)
    RenditionFactory(organization=org, study=study, kind="education", label="education_low_res")
    link_patient_account(patient, case.patient, case=case)  # the case's patient's own account (7011cfe)
    services.share_create(case=case, by=owner, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=patient)
    signed_in_as(page, live_server.url, patient)

    def portal(page):
        page.goto(f"{live_server.url}/portal/")
        page.get_by_test_id("education-download").wait_for()

    def refused(page):
        assert page.goto(f"{live_server.url}/cases/").status == 403
        page.get_by_test_id("back-to-portal").wait_for()

    _check(page, patient, portal)
    _check(page, patient, refused)


def test_the_delete_study_and_step_up_pages(page, live_server):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.factories import CaseFactory, StudyFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    radiologist = member(org, Role.RADIOLOGIST, email="radiologist@delete.example")
    TOTPDevice.objects.create(user=radiologist, name="phone", confirmed=True)
    case = CaseFactory(organization=org, created_by=radiologist, responsible_clinician=radiologist)
    study = StudyFactory(organization=org, case=case, num_instances=120, num_series=3, total_bytes=64_000_000)
    signed_in_as(page, live_server.url, radiologist)

    def delete(page):
        page.goto(f"{live_server.url}/studies/{study.public_id}/delete/")
        page.get_by_test_id("confirm-delete").wait_for()

    def step_up(page):
        page.goto(f"{live_server.url}/accounts/mfa/step-up/?next=/")
        page.locator("input[name=code]").fill("000000")  # a wrong code: the refused form
        page.locator("main button[type=submit]").click()
        page.locator("#id_code_error").wait_for()

    _check(page, radiologist, delete)
    _check(page, radiologist, step_up)


def test_the_share_review_a_refused_share_form_and_my_shares(page, live_server):
    from tests.factories import CaseFactory, GrantFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN, email="owner@share.example")
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="a.long.consultant.address@another-hospital.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title="Chest CT review")
    for _ in range(2):
        GrantFactory(organization=org, case=case, created_by=owner, grantee=consultant)
    share = f"{live_server.url}/sharing/cases/{case.public_id}/share/"
    signed_in_as(page, live_server.url, owner)

    def fill(page, email):
        page.goto(share)
        page.locator("select[name=use_case]").select_option("second_opinion")
        page.locator("select[name=recipient_kind]").select_option("user")
        page.locator("input[name=recipient_email]").fill(email)
        page.locator("form.share-form button[type=submit], main form button.primary").first.click()

    def review(page):
        fill(page, consultant.email)
        page.locator("input[name=confirm]").wait_for(state="attached")
        # its way back to the form is not a second "Change" beside the language switcher's
        names = page.get_by_role("button").all_inner_texts()
        assert len(names) == len(set(names)), names

    def refused(page):
        fill(page, "nobody@example.org")
        page.locator("#id_recipient_email_error").wait_for()

    def my_shares(page):
        page.goto(f"{live_server.url}/sharing/")

    _check(page, owner, review)
    _check(page, owner, refused)
    _check(page, owner, my_shares)


def test_the_member_page_warning_when_mail_is_down(page, live_server, settings):
    settings.EMAIL_BACKEND = f"{__name__}._DownMailServer"
    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    admin = member(org, Role.ORG_ADMIN, email="admin@mail-down.example")
    signed_in_as(page, live_server.url, admin)
    added = iter(range(10))

    def warned(page):
        page.goto(f"{live_server.url}/org/members/")
        page.locator("input[name=email]").fill(f"new.radiologist.{next(added)}@example.org")
        page.locator("input[name=full_name]").fill("New Radiologist")
        page.locator("select[name=role]").select_option(Role.RADIOLOGIST)
        page.locator("input[name=email]").evaluate("e => e.form.requestSubmit()")
        page.locator(".message-warning").wait_for()

    _check(page, admin, warned)


def test_the_phones_menu_and_filters_on_the_case_list_and_the_audit_trail(page, live_server):
    """The header's Menu (its links, the organization menu, the language switcher) and a list's
    Filters, closed and open (the button's names are found by class: they are translated)."""
    from tests.factories import CaseFactory

    first = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    second = OrganizationFactory(name="Seaside Test", mfa_required_roles=[])
    admin = member(first, Role.ORG_ADMIN, email="admin@menu.example")
    Membership.objects.create(user=admin, organization=second, role=Role.CLINICIAN)
    CaseFactory(organization=first, created_by=admin, responsible_clinician=admin, title="Chest CT review")
    signed_in_as(page, live_server.url, admin)

    def closed(page):
        page.goto(f"{live_server.url}/cases/")
        assert page.locator(".menu-toggle").get_attribute("aria-expanded") == "false"

    def opened(path):
        def open_page(page):
            page.goto(f"{live_server.url}{path}")
            page.locator(".menu-toggle").click()
            page.locator(".org-switcher summary").click()
            assert page.locator(".filters-toggle").get_attribute("aria-expanded") == "true"  # a filter in use
        return open_page

    _check(page, admin, closed)
    _check(page, admin, opened("/cases/?status=closed"))
    _check(page, admin, opened("/org/audit/?outcome=denied"))


def test_the_forms_with_searched_lists(page, live_server):
    """The case form's responsible clinician, the tumor board form's host, cases and participants,
    and the invitation form's cases: searched lists (radio buttons or checkboxes, their Find box,
    Search button and status line), each long enough to be searched."""
    from apps.core import forms as core_forms
    from tests.factories import CaseFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@forms.example")
    for i in range(core_forms.CHOICES_SEARCH_FROM + 1):
        member(org, Role.CLINICIAN, email=f"clinician.{i}@forms.example")
        member(org, Role.EXTERNAL_CONSULTANT, email=f"consultant.{i}@forms.example")
        CaseFactory(organization=org, created_by=clinician, title=f"Chest CT {i:02d}")
    signed_in_as(page, live_server.url, clinician)

    def opened(path, searched):
        def open_page(page):
            page.goto(f"{live_server.url}{path}")
            assert page.locator(".choices-search").count() == searched
        return open_page

    _check(page, clinician, opened("/cases/new/", 1))
    _check(page, clinician, opened("/boards/new/", 3))
    _check(page, clinician, opened("/org/invitations/new/", 1))


def test_attaching_a_study_to_a_case(page, live_server):
    """The study page of a study in no case (its Attach to a case), the confirmation that names
    whom the case's shares and tumor boards then reach, and the study page of one an ingest still
    adds to (why it has no case box)."""
    from apps.imaging.models import IngestJob, JobState
    from apps.imaging.services import ingest_job_create
    from tests.factories import BoardSessionFactory, CaseFactory, GrantFactory, StudyFactory

    org = OrganizationFactory(name="Northwind Test", mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@attach.example")
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="a.long.consultant.address@another-hospital.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    GrantFactory(organization=org, case=case, created_by=clinician, grantee=consultant)
    board = BoardSessionFactory(organization=org, host=clinician, title="Thoracic board")
    board.cases.add(case)
    board.participants.add(consultant)
    study = StudyFactory(organization=org, case=None)
    busy = StudyFactory(organization=org, case=None)
    job = ingest_job_create(organization=org, source_path="/nonexistent", enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    job.studies.add(busy)
    signed_in_as(page, live_server.url, clinician)

    def study_page(page):
        page.goto(f"{live_server.url}{study.get_absolute_url()}")
        page.get_by_test_id("attach-form").wait_for()

    def confirmation(page):
        page.goto(f"{live_server.url}/studies/{study.public_id}/attach/?case={case.public_id}")
        page.get_by_test_id("attach-reaches").wait_for()
        page.get_by_test_id("attach-boards").wait_for()

    def busy_page(page):
        page.goto(f"{live_server.url}{busy.get_absolute_url()}")
        page.get_by_test_id("attach-busy").wait_for()

    _check(page, clinician, study_page)
    _check(page, clinician, confirmation)
    _check(page, clinician, busy_page)
