"""A line of "Your recent uploads" naming a study still processing (a file's ingest ended while
the next file's added to the same study) becomes Ready without a reload: the upload page asks the
server for the current states (imaging:upload_states) while a line names a pending study or
upload, on a tablet and on a phone, in English and in Spanish; it stops once none is pending, asks
nothing while hidden, and nothing at all when nothing is pending (static/js/upload.js)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.imaging.models import JobState, Study, StudyState
from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import device_page, signed_in_as
from tests.factories import CaseFactory, IngestJobFactory, OrganizationFactory, StudyFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STATES = "/studies/uploads/states/"
HIDE = """() => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  delete document.hidden; delete document.visibilityState;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def _uploads(slug: str, language: str = "en", *, study_state=StudyState.PROCESSING):
    """An uploader whose two files went into one study: the first file's upload done, its study
    still processing (the second file's ingest adding to it), the second's upload still running."""
    org = OrganizationFactory(slug=slug, mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email=f"rad@{slug}.example", language=language)
    study = StudyFactory(organization=org, case=CaseFactory(organization=org), state=study_state,
                         study_description="CT chest", num_instances=1)
    first = IngestJobFactory(organization=org, created_by=user, state=JobState.DONE, files_ingested=1)
    first.studies.add(study)
    second = IngestJobFactory(organization=org, created_by=user, state=JobState.RUNNING)
    second.studies.add(study)
    return user, study, first, second


def _asked(page) -> list[str]:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if STATES in r.url else None)
    return asked


def test_a_processing_line_becomes_ready_without_a_reload_on_a_tablet(browser, live_server):
    user, study, first, second = _uploads("states-tablet")
    with device_page(browser, (768, 1024)) as page:
        signed_in_as(page, live_server.url, user)
        asked = _asked(page)
        page.clock.install()  # the page's timers moved on by run_for, not slept through
        page.goto(f"{live_server.url}/studies/upload/")
        page.wait_for_load_state("load")
        recent = page.get_by_test_id("recent-uploads")
        lines = recent.get_by_test_id("recent-upload")
        expect(lines).to_have_count(2)
        expect(recent.get_by_role("link", name="CT chest (Processing)")).to_have_count(2)
        expect(lines.first.get_by_test_id("job-outcome")).to_have_text("Processing")  # the running upload
        page.evaluate("() => { window.notReloaded = true; }")
        with page.expect_response(lambda r: STATES in r.url and r.status == 200, timeout=15_000):
            page.clock.run_for(3_500)  # the page asks 3 s after loading
        assert str(first.public_id) in asked[0] or str(second.public_id) in asked[0]

        # the second file's ingest ends: the study is ready, both uploads done
        Study.objects.filter(pk=study.pk).update(state=StudyState.READY, num_instances=2)
        type(second).objects.filter(pk=second.pk).update(state=JobState.DONE, files_ingested=1)
        page.clock.run_for(5_000)  # the next question, 4.5 s after the first
        expect(recent.get_by_role("link", name="CT chest (Ready)")).to_have_count(2, timeout=30_000)
        expect(lines.first.get_by_test_id("job-outcome")).to_have_text("Done")
        expect(recent.get_by_role("link", name="CT chest (Ready)").first).to_have_attribute(
            "href", study.get_absolute_url())
        assert page.evaluate("() => window.notReloaded === true")  # no reload
        assert page.evaluate("document.documentElement.scrollWidth") <= 768

        # nothing is pending any more: the page asks no more (two minutes of its clock)
        count = len(asked)
        page.clock.run_for(120_000)
        page.wait_for_timeout(500)
        assert len(asked) == count


def test_a_phone_in_spanish_waits_while_hidden_then_says_ready(browser, live_server):
    user, study, _first, second = _uploads("states-phone", "es")
    type(second).objects.filter(pk=second.pk).update(state=JobState.DONE, files_ingested=1)
    with device_page(browser, (390, 844), language="es") as page:
        signed_in_as(page, live_server.url, user)
        asked = _asked(page)
        page.clock.install()  # the page's timers moved on by run_for, not slept through
        page.goto(f"{live_server.url}/studies/upload/")
        page.wait_for_load_state("load")
        recent = page.get_by_test_id("recent-uploads")
        expect(recent.get_by_role("link", name="CT chest (Procesando)")).to_have_count(2)
        page.evaluate("() => { window.notReloaded = true; }")
        with page.expect_response(lambda r: STATES in r.url and r.status == 200, timeout=15_000):
            page.clock.run_for(3_500)
        # the page is hidden (another tab, the phone locked): it asks nothing meanwhile
        page.evaluate(HIDE)
        count = len(asked)
        Study.objects.filter(pk=study.pk).update(state=StudyState.READY_WITH_WARNINGS)
        page.clock.run_for(120_000)  # two minutes of its clock
        page.wait_for_timeout(500)
        assert len(asked) == count
        expect(recent.get_by_role("link", name="CT chest (Procesando)")).to_have_count(2)
        # shown again: it asks at once
        page.evaluate(SHOW)
        expect(recent.get_by_role("link", name="CT chest (Listo con advertencias)")).to_have_count(2,
                                                                                                 timeout=15_000)
        assert page.evaluate("() => window.notReloaded === true")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_nothing_pending_nothing_asked(page, live_server):
    user, _study, _first, second = _uploads("states-none", study_state=StudyState.READY)
    type(second).objects.filter(pk=second.pk).update(state=JobState.DONE, files_ingested=1)
    signed_in_as(page, live_server.url, user)
    asked = _asked(page)
    page.clock.install()  # the page's timers moved on by run_for, not slept through
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    expect(page.get_by_test_id("recent-uploads").get_by_role("link", name="CT chest (Ready)")).to_have_count(2)
    page.clock.run_for(120_000)  # two minutes of its clock
    page.wait_for_timeout(500)
    assert asked == []


def test_a_finished_line_says_how_many_images_its_study_holds_after_the_next_upload(page, live_server, tmp_path):
    """A file's line said "Ready, 1 image" of its study after the next file, uploaded into the
    same study, made it 2 (found by QA): the newer answer brings every line of the study up to
    date, without a reload (static/js/upload.js applyStudy)."""
    org = OrganizationFactory(slug="states-count", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@states-count.example")
    CaseFactory(organization=org, title="Outside CT")
    first, second = write_ct_series(tmp_path / "ct", slices=2, rows=16, columns=16)
    signed_in_as(page, live_server.url, user)
    page.goto(f"{live_server.url}/studies/upload/")
    page.get_by_label("Case", exact=True).select_option(label="Outside CT")
    lines = page.locator("[data-testid=upload-item] .report a")
    page.get_by_label("Choose files or a zip").set_input_files([str(first)])
    expect(lines).to_have_text(["Synthetic CT chest (Ready, 1 image)"], timeout=15_000)
    page.evaluate("() => { window.notReloaded = true; }")
    page.get_by_label("Choose files or a zip").set_input_files([str(second)])
    expect(lines).to_have_text(["Synthetic CT chest (Ready, 2 images)"] * 2, timeout=15_000)
    assert page.evaluate("() => window.notReloaded === true")
