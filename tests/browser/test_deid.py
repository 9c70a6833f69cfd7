"""A de-identified export on a tablet: a radiologist opens the study, starts the export from its
button, sees it ready with its per-image report and label, and downloads ``..._DeID.zip``."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import _only_local, sign_in
from tests.factories import CaseFactory, OrganizationFactory, member
from tests.renditions.conftest import ingest_folder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_export_from_the_study_page_on_a_tablet(browser, live_server, tmp_path, output_dir):
    org = OrganizationFactory(name="Northwind Test", slug="northwind-deid", mfa_required_roles=[])
    radiologist = member(org, Role.RADIOLOGIST, email="radiologist@northwind.test")
    paths = write_ct_series(tmp_path / "ct", slices=3, rows=32, columns=32, patient_name="Tabletpatient^Wilhelmina")
    burned = pydicom.dcmread(paths[0])
    burned.SOPInstanceUID = burned.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    burned.BurnedInAnnotation = "YES"
    burned.save_as(tmp_path / "ct" / "burned.dcm", enforce_file_format=True)
    [study] = ingest_folder(tmp_path / "ct", org, case=CaseFactory(organization=org))

    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="en-US", has_touch=True,
                                  accept_downloads=True)
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    page = context.new_page()
    base = live_server.url
    study_path = reverse("imaging:study_detail", kwargs={"study_id": study.public_id})
    try:
        sign_in(page, base, radiologist.email, then=study_path)
        page.get_by_test_id("deid-exports").click()
        page.get_by_test_id("deid-start").click()
        page.wait_for_url(f"{base}/deid/exports/**")
        assert page.get_by_test_id("deid-state").inner_text() == "Ready"
        assert "PS3.15 Annex E" in page.get_by_test_id("deid-label").inner_text()
        rows = page.get_by_test_id("deid-file")
        assert rows.count() == 4
        assert "Burned-in annotation" in page.locator("tr.outcome-excluded").inner_text()
        # nothing overflows the tablet's width
        assert page.evaluate("document.documentElement.scrollWidth") <= 768
        page.screenshot(path=str(output_dir / "deid-export-tablet.png"), full_page=True)
        with page.expect_download() as info:
            page.get_by_test_id("deid-download").click()
        download = info.value
        assert download.suggested_filename.endswith("_DeID.zip")
        data = open(download.path(), "rb").read()
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert sum(n.endswith(".dcm") for n in names) == 3 and any(n.endswith("MANIFEST.txt") for n in names)
        assert b"Wilhelmina" not in data
    finally:
        context.close()


def test_the_progress_updates_in_place_then_the_finished_page_loads(browser, live_server, tmp_path):
    """While the export runs, the page polls its status (JSON) and updates the state, the progress
    bar, the counts and the status message in place: no navigation, a value set on the page
    survives, and the focused control keeps the focus. Once the export is ready, the finished page
    is loaded once, with its download."""
    from django.db.models import F

    from apps.deid.models import DeidExport, State
    from apps.deid.services import deid_export_run, deid_export_start

    org = OrganizationFactory(slug="northwind-progress", mfa_required_roles=[])
    radiologist = member(org, Role.RADIOLOGIST, email="radiologist@progress.test")
    write_ct_series(tmp_path / "ct", slices=3, rows=32, columns=32)
    [study] = ingest_folder(tmp_path / "ct", org, case=CaseFactory(organization=org))
    export = deid_export_start(study=study, by=radiologist, pseudonym="PSEUDO-PROGRESS", enqueue=False)
    DeidExport.objects.filter(pk=export.pk).update(files_total=3)
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="en-US")
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    page = context.new_page()
    # the page's timers on Playwright's clock: time flows as usual, and the test moves it on to the
    # next poll (run_for) instead of waiting its 3 s in real time
    page.clock.install()
    status_url = reverse("deid:export_status", kwargs={"deidexport_id": export.public_id})
    try:
        sign_in(page, live_server.url, radiologist.email, then=export.get_absolute_url())
        url = page.url
        loads = []
        page.on("load", lambda: loads.append(page.url))
        polls = []
        page.on("request", lambda request: polls.append(request.url) if status_url in request.url else None)
        assert "0 of 3 images processed" in page.get_by_test_id("deid-counts").inner_text()
        expect(page.get_by_test_id("deid-state")).to_have_text("Queued")
        page.evaluate("() => { window.stillTheSamePage = true; }")
        page.get_by_test_id("deid-refresh").focus()  # a keyboard user on the page's one control

        DeidExport.objects.filter(pk=export.pk).update(state=State.RUNNING, files_done=F("files_done") + 2,
                                                       files_exported=2, bytes=3 * 1024)
        page.clock.run_for(3_000)  # the next poll
        expect(page.get_by_test_id("deid-counts")).to_contain_text("2 of 3 images processed")
        expect(page.get_by_test_id("deid-counts")).to_contain_text("2 exported")
        expect(page.get_by_test_id("deid-counts")).to_contain_text("3.0\xa0KB")
        expect(page.get_by_test_id("deid-progress")).to_have_attribute("value", "66")
        expect(page.get_by_test_id("deid-state")).to_have_text("De-identifying")
        expect(page.get_by_test_id("deid-state")).to_have_class("badge state-running")
        expect(page.get_by_role("status").filter(has_text="progress below updates by itself")).to_be_visible()
        assert polls, "the page polls its status"
        # updated in place: the same document, the same address, the focus where it was
        assert page.evaluate("() => window.stillTheSamePage === true")
        assert page.url == url and loads == []
        assert page.evaluate("() => document.activeElement.dataset.testid") == "deid-refresh"

        deid_export_run(export_id=export.pk)
        page.clock.run_for(3_000)  # the next poll
        expect(page.get_by_test_id("deid-download")).to_be_visible()
        assert page.evaluate("() => window.stillTheSamePage === undefined")  # the finished page, loaded once
        # its content shows before its load event (images, scripts): wait for that event
        page.wait_for_load_state("load")
        for _ in range(100):
            if loads:
                break
            page.wait_for_timeout(50)
        assert page.url == url and len(loads) == 1
        expect(page.get_by_test_id("deid-state")).to_have_text("Ready")
        assert page.get_by_test_id("deid-file").count() == 3  # the per-image report came with it
        seen = len(polls)
        page.clock.run_for(120_000)  # two minutes of its clock
        page.wait_for_timeout(500)
        assert len(polls) == seen and len(loads) == 1  # the finished page polls no more
    finally:
        context.close()


def _exports_page_on_a_phone_in_spanish(page, live_server, slug: str) -> None:
    """A radiologist reading Spanish opens a study's de-identified exports (none yet) on a phone."""
    from tests.browser.conftest import signed_in_as
    from tests.factories import StudyFactory

    org = OrganizationFactory(slug=slug, mfa_required_roles=[])
    radiologist = member(org, Role.RADIOLOGIST, email=f"radiologist@{slug}.test", language="es")
    study = StudyFactory(organization=org, case=CaseFactory(organization=org))
    signed_in_as(page, live_server.url, radiologist)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + reverse("deid:study_exports", kwargs={"study_id": study.public_id}))


def test_the_profiles_label_fits_a_phone_in_spanish(page, live_server):
    """The profile's name, in a badge that never wrapped, was 433 px wide in Spanish: the whole
    export page scrolled sideways on a 390 px phone."""
    _exports_page_on_a_phone_in_spanish(page, live_server, "northwind-deid-phone")
    assert "PS3.15" in page.get_by_test_id("deid-label").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_no_export_yet_is_said_without_an_empty_table_on_a_phone(page, live_server):
    """The sentence saying a study has no export yet sat in an empty table's first row, scrolled
    with the table: on a phone in Spanish it was cut off at the screen's edge."""
    _exports_page_on_a_phone_in_spanish(page, live_server, "northwind-deid-empty")
    empty = page.get_by_test_id("deid-exports-empty")
    assert empty.inner_text() == "Todavía no hay ninguna exportación desidentificada."
    box = empty.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.locator("main table").count() == 0
