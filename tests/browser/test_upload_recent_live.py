"""A row added to "Your recent uploads" as an upload finishes (no reload) is the row the page
lists reloaded: its source, outcome, per-file report and studies, and for a study in no case the
badge saying to attach it from its page (the live row had no badge)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.imaging.models import Study
from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _rows(page) -> list[str]:
    """Each row of "Your recent uploads" but its time ("Just now" live, a date reloaded)."""
    rows = page.get_by_test_id("recent-upload").all_inner_texts()
    return [" ".join(row.split()).split(" · ", 1)[1] for row in rows]


def test_a_live_row_is_the_reloaded_one_with_the_no_case_badge(page, live_server, tmp_path):
    org = OrganizationFactory(slug="live-row-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@live-row.example")
    CaseFactory(organization=org, title="Case A")
    signed_in_as(page, live_server.url, user)
    in_case = write_ct_series(tmp_path / "a", slices=1, rows=64, columns=64)[0]
    no_case = write_ct_series(tmp_path / "b", slices=1, rows=64, columns=64)[0]
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    recent = page.get_by_test_id("recent-uploads")

    page.locator("#upload-case").select_option(label="Case A")
    page.locator("#upload-files").set_input_files([str(in_case)])
    expect(recent.get_by_test_id("recent-upload")).to_have_count(1, timeout=60_000)
    page.locator("#upload-case").select_option(label="No case (attach later)")
    page.locator("#upload-files").set_input_files([str(no_case)])
    expect(recent.get_by_test_id("recent-upload")).to_have_count(2, timeout=60_000)

    badge = recent.get_by_test_id("no-case")
    expect(badge).to_have_count(1)
    expect(badge).to_have_text("in no case: attach it from its page")
    expect(recent.get_by_test_id("recent-upload").first).to_contain_text(no_case.name)
    expect(recent.get_by_test_id("recent-upload").first.get_by_test_id("no-case")).to_have_count(1)
    expect(recent.get_by_test_id("job-report")).to_have_count(2)
    live = _rows(page)
    assert Study.objects.filter(case__isnull=True).count() == 1

    page.reload()
    page.wait_for_load_state("load")
    assert _rows(page) == live
    expect(page.get_by_test_id("recent-uploads").get_by_test_id("no-case")).to_have_count(1)
