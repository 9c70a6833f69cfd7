"""A radiologist uploads a few DICOM files from the upload page (tus-js-client, served by the
app) on a phone-sized screen, sees progress, and then the per-file report and the study state."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.imaging.models import Instance, Study
from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_upload_page_uploads_files_and_shows_the_report(page, live_server, tmp_path, output_dir):
    org = OrganizationFactory(slug="upload-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@upload.example")
    case = CaseFactory(organization=org, title="Outside CT")
    signed_in_as(page, live_server.url, user)
    paths = write_ct_series(tmp_path / "ct", slices=3, rows=64, columns=64)
    paths.append(tmp_path / "notes.dcm")
    paths[-1].write_bytes(b"not a dicom file" * 20)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/studies/upload/")
    page.get_by_label("Case", exact=True).select_option(label="Outside CT")
    page.get_by_label("Choose files or a zip").set_input_files([str(p) for p in paths])
    items = page.get_by_test_id("upload-item")
    items.first.wait_for()
    assert items.count() == 4
    # each file ends with its ingest outcome; the good ones link to the ready study
    page.locator("[data-testid=upload-item] .report a").nth(2).wait_for(timeout=60_000)
    page.get_by_text("not a DICOM file", exact=False).wait_for(timeout=60_000)
    assert page.locator("#upload-progress").get_attribute("value") == "100"
    # "Your recent uploads" lists them as they finish, without a reload
    recent = page.get_by_test_id("recent-uploads")
    expect(recent.locator("li")).to_have_count(4)
    expect(recent).not_to_contain_text("Nothing uploaded yet.")
    expect(recent).to_contain_text("notes.dcm")
    # each names the study with its state when that file's ingest ended: with the ingest after the
    # last PATCH's answer (eac2fa7) a file may end while the next one's adds to the study
    # (Processing), as with a real worker; the page then asks for the study's state until it is
    # final (imaging:upload_states), so each line comes to say Ready without a reload
    expect(recent.get_by_role("link", name=re.compile(r"^Synthetic CT chest \("))).to_have_count(3)
    expect(recent.get_by_role("link", name="Synthetic CT chest (Ready)")).to_have_count(3, timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(output_dir / "upload-phone.png"), full_page=True)
    study = Study.objects.get()
    assert study.case == case and study.is_ready
    assert Instance.objects.count() == 3
    # the file's report names its study by its description and its images (static/js/upload.js):
    # the study's when its job was seen finished, 1 to 3 (the ingest runs once the last PATCH is
    # answered, as with a worker, so the next files may be in already), or, when the next file's
    # was still adding to it (Processing), the study's once it is ready (imaging:upload_states)
    expect(page.locator("[data-testid=upload-item] .report a")).to_have_count(3)
    for i in range(3):
        expect(page.locator("[data-testid=upload-item] .report a").nth(i)).to_have_text(
            re.compile(r"^Synthetic CT chest \(Ready, (1 image|[23] images)\)$"), timeout=30_000)
    page.locator("[data-testid=upload-item] .report a").first.click()
    expect(page.get_by_test_id("study-state")).to_have_text("Ready")


def test_a_failed_upload_says_why(page, live_server, tmp_path):
    """A file over the organization's limit, or an upload after the session ended, says so
    (it said "it resumes when you choose the file again" for both, which neither would do)."""
    org = OrganizationFactory(slug="limit-org", upload_max_bytes=1000)
    user = member(org, Role.RADIOLOGIST, email="rad@limit.example")
    signed_in_as(page, live_server.url, user)
    big, small = tmp_path / "big.dcm", tmp_path / "small.dcm"
    big.write_bytes(b"\0" * 5000)
    small.write_bytes(b"\0" * 500)
    page.goto(f"{live_server.url}/studies/upload/")
    page.get_by_label("Choose files or a zip").set_input_files([str(big)])
    expect(page.get_by_test_id("upload-item")).to_contain_text(
        "Not sent: this file is larger than your organization accepts (1000")
    # signed out in another tab: the next upload is refused as such
    page.context.clear_cookies()
    page.get_by_label("Choose files or a zip").set_input_files([str(small)])
    expect(page.get_by_test_id("upload-item").last).to_contain_text("Stopped: you have been signed out")
    assert not Study.objects.exists()


def test_a_session_that_ended_is_told_as_such_in_spanish(page, live_server, tmp_path):
    """The session ends while the page stays open (its CSRF cookie too): the tus server's 403
    text is Spanish now, and the page still knows it for a sign-out (by its Lightbox-Refusal
    header) and says so in its own Spanish message."""
    from django.conf import settings

    org = OrganizationFactory(slug="gone-org")
    user = member(org, Role.RADIOLOGIST, email="rad@gone.example", language="es")
    signed_in_as(page, live_server.url, user)
    small = tmp_path / "small.dcm"
    small.write_bytes(b"\0" * 500)
    page.goto(f"{live_server.url}/studies/upload/")
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)
    with page.expect_response(lambda r: r.request.method == "POST" and "/api/v1/uploads/" in r.url) as refused:
        page.locator("#upload-files").set_input_files([str(small)])
    assert refused.value.status == 403 and refused.value.text() == "inicie sesión primero"
    expect(page.get_by_test_id("upload-item")).to_contain_text("Detenido: se cerró su sesión")
    assert not Study.objects.exists()


@pytest.mark.parametrize(("language", "shown"), [
    ("en", "Not sent: this case has been closed. Reopen it to upload studies into it."),
    ("es", "No enviado: este caso se ha cerrado. Reábralo para subir estudios a él."),
])
def test_a_case_closed_after_the_page_was_loaded_is_named_as_the_reason(page, live_server, tmp_path, language,
                                                                          shown):
    """The case is closed in another tab between loading the page and sending: the server's 403
    (Lightbox-Refusal: case_closed) is told as a closed case, not as "you may not upload studies
    to this organization"."""
    from apps.cases.models import Case, CaseStatus

    org = OrganizationFactory(slug=f"closing-org-{language}", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email=f"rad-{language}@closing.example", language=language)
    case = CaseFactory(organization=org, title="Closing soon")
    signed_in_as(page, live_server.url, user)
    small = tmp_path / "small.dcm"
    small.write_bytes(b"\0" * 500)
    page.goto(f"{live_server.url}/studies/upload/")
    page.locator("#upload-case").select_option(label="Closing soon")
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.CLOSED)
    with page.expect_response(lambda r: r.request.method == "POST" and "/api/v1/uploads/" in r.url) as refused:
        page.locator("#upload-files").set_input_files([str(small)])
    assert refused.value.status == 403 and refused.value.headers["lightbox-refusal"] == "case_closed"
    expect(page.get_by_test_id("upload-item")).to_contain_text(shown)
    assert not Study.objects.exists()


def test_more_bytes_than_declared_is_not_told_as_over_the_organizations_limit(page, live_server, tmp_path):
    """A 413 for an append past Upload-Length (the file changed while it was sent; the server's
    answer is stood in for here, as a browser cannot grow a file mid-upload) says so, not "larger
    than your organization accepts"."""
    org = OrganizationFactory(slug="growing-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@growing.example")
    signed_in_as(page, live_server.url, user)
    small = tmp_path / "small.dcm"
    small.write_bytes(b"\0" * 500)
    page.route("**/api/v1/uploads/*/", lambda route: route.fulfill(
        status=413, body="more bytes than Upload-Length",
        headers={"Tus-Resumable": "1.0.0", "Lightbox-Refusal": "over_length"})
        if route.request.method == "PATCH" else route.continue_())
    page.goto(f"{live_server.url}/studies/upload/")
    page.locator("#upload-files").set_input_files([str(small)])
    expect(page.get_by_test_id("upload-item")).to_contain_text(
        "Stopped: the file changed while it was being sent. Choose it again to send it anew.")
    expect(page.get_by_test_id("upload-item")).not_to_contain_text("larger than your organization accepts")
