"""A case's Studies and Recent access on a phone are a card a row (.stacked-table, as the case
list and My shares): QA found them scrolling sideways at 390 px, only Study and Date in sight,
the modality, series, formats (Original diagnostic, Preview - lossy), what happened and its
outcome off the screen."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.audit import actions
from apps.audit.services import record
from apps.organizations.models import Role
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, RenditionFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 390


def _inside(locator) -> None:
    """Within the screen's width where the page puts it (not scrolled into view: that would scroll
    a table sideways to it)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, box


def test_a_cases_studies_and_recent_access_are_cards_on_a_phone(browser, live_server):
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN, email="clinician@case-cards.example")
    case = CaseFactory(organization=org, created_by=clinician, responsible_clinician=clinician, title="Chest CT")
    study = StudyFactory(organization=org, case=case, study_description="CT chest", modalities="CT")
    for kind, label in (("original", "diagnostic_original"), ("preview", "preview_lossy")):
        RenditionFactory(organization=org, study=study, kind=kind, label=label)
    record(action=actions.GRANT_OPENED, organization=org, actor=clinician, target=case, case=case)
    with device_page(browser, (WIDTH, 844)) as page:
        signed_in_as(page, live_server.url, clinician)
        page.goto(live_server.url + reverse("cases:case_detail", kwargs={"case_id": case.public_id}))
        page.wait_for_load_state("load")  # the page's styles are applied
        row = page.get_by_test_id("study")
        for cell in row.locator("td").all():
            _inside(cell)
        badges = row.get_by_test_id("rendition-badge")
        expect(badges).to_have_count(2)
        for badge in badges.all():
            _inside(badge)
        assert row.get_by_test_id("study-renditions").evaluate(
            "td => getComputedStyle(td, '::before').content") == '"Renditions"'
        history = page.get_by_test_id("case-history")
        for cell in history.locator("tbody tr").first.locator("td").all():
            _inside(cell)
        assert page.get_by_test_id("history-outcome").first.evaluate(
            "td => getComputedStyle(td, '::before').content") == '"Outcome"'
        for table in (row, history):
            assert table.evaluate("t => { const w = t.closest('.table-wrap'); return w.scrollWidth <= w.clientWidth; }")
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
