"""The upload page's live per-file lines are the report page's, in its order (problems, then
warnings, then notes; the files ingested with nothing to say are left to the report page), and
an upload whose status is cut (more lines than it carries, apps.imaging.tus.STATUS_FILES) says
so, "Showing the first N of M", with the way to the report page, which lists them all: the
lines past the cut were left out without a word."""

from __future__ import annotations

import re
import zipfile

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_live_lines_follow_the_report_and_a_cut_status_says_so(page, live_server, tmp_path, monkeypatch):
    from apps.imaging import tus

    org = OrganizationFactory(slug="report-lines-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@report-lines.example")
    CaseFactory(organization=org, title="Case A")
    stored = write_ct_series(tmp_path / "stored", slices=1, rows=64, columns=64)[0]
    new = write_ct_series(tmp_path / "new", slices=1, rows=64, columns=64)[0]
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as zf:  # read in this order: ingested, duplicate, skipped
        zf.write(new, "new/IM1.dcm")
        zf.write(stored, "again/IM1.dcm")
        zf.writestr("notes.txt", "A text report, not DICOM.\n" * 20)
    signed_in_as(page, live_server.url, user)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    page.locator("#upload-case").select_option(label="Case A")
    recent = page.get_by_test_id("recent-uploads").get_by_test_id("recent-upload")
    page.locator("#upload-files").set_input_files([str(stored)])
    expect(recent).to_have_count(1, timeout=60_000)

    monkeypatch.setattr(tus, "STATUS_FILES", 2)  # the live server's thread reads it per request
    page.locator("#upload-files").set_input_files([str(export)])
    expect(recent).to_have_count(2, timeout=60_000)
    item = page.get_by_test_id("upload-item").last
    lines = item.get_by_test_id("report-line")
    expect(lines).to_have_count(2)
    assert [(re.split(r": ", text, maxsplit=1)[0], lines.nth(i).get_attribute("data-severity"))
            for i, text in enumerate(lines.all_inner_texts())] == [("notes.txt", "problem"), ("again/IM1.dcm", "note")]
    cut = item.get_by_test_id("report-cut")
    expect(cut).to_have_text("Showing the first 2 of 3 files, problems first. See the full report")

    cut.get_by_test_id("report-cut-link").click()
    page.wait_for_load_state("load")
    rows = page.get_by_test_id("report-line")
    expect(rows).to_have_count(3)
    assert [(row.locator("td").first.inner_text(), row.get_attribute("data-severity")) for row in rows.all()] == [
        ("notes.txt", "problem"), ("again/IM1.dcm", "note"), ("new/IM1.dcm", "ok")]
