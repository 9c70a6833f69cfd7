"""An upload the page resumes: after a reload, only into the case chosen now; after a dropped
connection, by itself when the connection is back. A refusal that resuming cannot change says the
server's reason and offers no resuming."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from apps.cases.models import Case
from apps.imaging.models import Study, Upload, UploadState
from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: upload.js sends a file in chunks of this many bytes (LIGHTBOX_UPLOAD_CHUNK_BYTES, set below: a
#: small file of a few chunks is ingested in a moment, where the 16 MiB default needed an 18 MB image)
CHUNK = 256 * 1024
NO_CASE = "No case (attach later)"


@pytest.fixture(autouse=True)
def _small_chunks(settings):
    settings.LIGHTBOX_UPLOAD_CHUNK_BYTES = CHUNK


def _over_one_chunk(tmp_path):
    """A DICOM file of three chunks (about 520 kB): one chunk can land before the upload stops."""
    path = write_ct_series(tmp_path / "ct", slices=1, rows=512, columns=512)[0]
    assert 2 * CHUNK < path.stat().st_size < 3 * CHUNK
    return path


def _is_patch(request) -> bool:
    return request.method == "PATCH" and "/api/v1/uploads/" in request.url


def _wait_until(page, condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        page.wait_for_timeout(100)  # real time, Playwright's events pumped meanwhile


def _study_ready(page):
    _wait_until(page, lambda: Study.objects.filter(state="ready").exists(), seconds=120)
    return Study.objects.get()


@pytest.mark.parametrize(("first", "then"), [("Case A", NO_CASE), (NO_CASE, "Case B"), ("Case A", "Case A")])
def test_a_reloaded_upload_goes_into_the_case_chosen_when_the_file_is_chosen_again(page, live_server, tmp_path,
                                                                                   first, then):
    """The upload stops after its first chunk and the page is reloaded; the same file is chosen
    again with another case: it is sent anew into that case (it resumed the stored upload, whose
    case the server fixed at its creation, and the study landed in the first case). With the same
    case, it resumes where it stopped."""
    org = OrganizationFactory(slug="resume-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@resume.example")
    cases = {"Case A": CaseFactory(organization=org, title="Case A"),
             "Case B": CaseFactory(organization=org, title="Case B"), NO_CASE: None}
    signed_in_as(page, live_server.url, user)
    path = _over_one_chunk(tmp_path)
    patches = []
    cut = [True]

    def first_chunk_only(route):
        patches.append(route.request)
        route.abort() if cut[0] and len(patches) > 1 else route.continue_()

    page.route("**/api/v1/uploads/*/", lambda route: first_chunk_only(route) if _is_patch(route.request)
               else route.continue_())
    page.goto(f"{live_server.url}/studies/upload/")
    page.locator("#upload-case").select_option(label=first)
    page.locator("#upload-files").set_input_files([str(path)])
    _wait_until(page, lambda: len(patches) > 1)  # the first chunk is in, the second cut
    stopped = Upload.objects.get()
    assert stopped.offset == CHUNK and stopped.case == cases[first]

    page.reload()
    page.wait_for_load_state("load")
    cut[0] = False  # only now: a retry let through before the reload would finish the first upload
    page.locator("#upload-case").select_option(label=then)
    page.locator("#upload-files").set_input_files([str(path)])
    study = _study_ready(page)
    assert study.case == cases[then]
    expect(page.get_by_test_id("upload-case")).to_have_text("No case" if then == NO_CASE else f"Case: {then}")
    if first == then:  # resumed: one upload, sent once
        assert Upload.objects.get().pk == stopped.pk
    else:  # the first is left to expire where it stopped
        stopped.refresh_from_db()
        assert stopped.state == UploadState.UPLOADING and stopped.offset == CHUNK
        assert Upload.objects.exclude(pk=stopped.pk).get().case == cases[then]


def test_a_connection_dropped_for_a_moment_resumes_by_itself(page, live_server, tmp_path):
    """The connection drops after the first chunk (tus-js-client gives up at once while the
    browser is offline) and comes back after a second and a half: the page says it waits, then
    the upload goes on by itself and the study is complete."""
    org = OrganizationFactory(slug="offline-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@offline.example")
    case = CaseFactory(organization=org, title="Case A")
    signed_in_as(page, live_server.url, user)
    path = _over_one_chunk(tmp_path)
    patches = []

    def drop_on_second_chunk(route):
        patches.append(route.request)
        if len(patches) == 2:
            page.context.set_offline(True)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/api/v1/uploads/*/", lambda route: drop_on_second_chunk(route) if _is_patch(route.request)
               else route.continue_())
    page.goto(f"{live_server.url}/studies/upload/")
    page.locator("#upload-case").select_option(label="Case A")
    page.locator("#upload-files").set_input_files([str(path)])
    item = page.get_by_test_id("upload-item")
    expect(item).to_contain_text("Connection lost — waiting to resume…")
    expect(page.locator("#upload-pause")).to_be_enabled()
    page.wait_for_timeout(1500)
    page.context.set_offline(False)
    study = _study_ready(page)
    assert study.case == case and study.num_instances == 1
    upload = Upload.objects.get()  # resumed, not sent anew
    assert upload.state == UploadState.COMPLETE and upload.offset == upload.length == path.stat().st_size
    expect(item).not_to_contain_text("failed")


def test_a_case_gone_since_the_page_was_loaded_says_the_servers_reason_and_offers_no_resuming(page, live_server,
                                                                                              tmp_path):
    """The case is deleted in another tab: the tus server's 400 "unknown case" is shown, not
    "Upload failed; it resumes…", which no resuming could make true."""
    org = OrganizationFactory(slug="gone-case-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@gone-case.example")
    case = CaseFactory(organization=org, title="Soon gone")
    signed_in_as(page, live_server.url, user)
    small = write_ct_series(tmp_path / "ct", slices=1, rows=64, columns=64)[0]
    page.goto(f"{live_server.url}/studies/upload/")
    page.locator("#upload-case").select_option(label="Soon gone")
    Case.objects.filter(pk=case.pk).delete()
    with page.expect_response(lambda r: r.request.method == "POST" and "/api/v1/uploads/" in r.url) as refused:
        page.locator("#upload-files").set_input_files([str(small)])
    assert refused.value.status == 400
    item = page.get_by_test_id("upload-item")
    expect(item).to_contain_text("The server refused this upload: unknown case")
    expect(item).not_to_contain_text("resume")
    expect(item.get_by_test_id("upload-case")).to_have_text("Case: Soon gone")
    expect(page.locator("#upload-resume")).to_be_disabled()
    assert not Upload.objects.exists()


def test_an_upload_that_failed_after_its_retries_resumes_with_the_resume_button(page, live_server, tmp_path):
    """The server answers 503 to every chunk until tus-js-client's retries run out (their delays
    run on the page's fake clock): the upload failed, and Resume (it stayed disabled) sends it
    from where the server stands once the server is back."""
    org = OrganizationFactory(slug="retry-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@retry.example")
    signed_in_as(page, live_server.url, user)
    small = write_ct_series(tmp_path / "ct", slices=1, rows=64, columns=64)[0]
    down = [True]
    page.route("**/api/v1/uploads/*/", lambda route: route.fulfill(
        status=503, body="down", headers={"Tus-Resumable": "1.0.0", "Content-Type": "text/plain"})
        if down[0] and _is_patch(route.request) else route.continue_())
    page.clock.install()
    page.goto(f"{live_server.url}/studies/upload/")
    page.locator("#upload-files").set_input_files([str(small)])
    item = page.get_by_test_id("upload-item")
    failed = "Upload failed: press Resume, or choose the file again, to continue where it stopped."

    def shown(text: str) -> bool:
        page.clock.run_for(5000)
        return text in item.inner_text()

    _wait_until(page, lambda: shown(failed))
    resume = page.locator("#upload-resume")
    expect(resume).to_be_enabled()
    expect(item.get_by_test_id("upload-case")).to_have_text("No case")
    down[0] = False
    resume.click()
    study = _study_ready(page)  # ingested as the last chunk is taken (Celery runs eagerly here)
    assert study.case is None
    expect(item.locator(".report a")).to_have_count(1)  # the page polls once at once
    expect(resume).to_be_disabled()
    assert Upload.objects.get().state == UploadState.COMPLETE
