"""After a reload, the upload page names the uploads left unfinished on an earlier visit
(tus-js-client's "tus::" entries in localStorage), says how to resume them, and can forget them:
their entries go and the server's uploads are terminated."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.imaging.models import Upload, UploadState
from apps.organizations.models import Role
from tests.browser.conftest import signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TUS_KEYS = "() => Object.keys(localStorage).filter((k) => k.startsWith('tus::'))"


def test_interrupted_uploads_are_named_after_a_reload_and_can_be_forgotten(page, live_server, tmp_path):
    org = OrganizationFactory(slug="interrupted-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@interrupted.example")
    signed_in_as(page, live_server.url, user)
    scan, other = tmp_path / "scan.zip", tmp_path / "other.dcm"
    scan.write_bytes(b"\0" * 500)
    other.write_bytes(b"\1" * 600)

    # every chunk refused: both uploads are created (their entries stored) and stop at 0 bytes
    def refuse_patch(route):
        if route.request.method == "PATCH":
            route.fulfill(status=400, body="no", headers={"Tus-Resumable": "1.0.0", "Content-Type": "text/plain"})
        else:
            route.continue_()

    page.route("**/api/v1/uploads/*/", refuse_patch)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    notice = page.get_by_test_id("upload-interrupted")
    expect(notice).to_be_hidden()
    page.locator("#upload-files").set_input_files([str(scan), str(other)])
    expect(page.get_by_test_id("upload-item").last).to_contain_text("The server refused this upload: no")
    expect(notice).to_be_hidden()  # begun on this page: shown with its own item
    assert len(page.evaluate(TUS_KEYS)) == 2

    page.unroute("**/api/v1/uploads/*/")
    page.reload()
    page.wait_for_load_state("load")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Interrupted: ")
    expect(notice).to_contain_text("choose the same files again to resume where they stopped.")
    expect(notice).to_contain_text("scan.zip")
    expect(notice).to_contain_text("other.dcm")

    # scan.zip chosen again resumes its upload and finishes: no longer interrupted
    page.locator("#upload-files").set_input_files([str(scan)])
    expect(notice.get_by_test_id("interrupted-text")).to_have_text(
        "Interrupted: other.dcm — choose the same file again to resume where it stopped.")
    assert Upload.objects.get(filename="scan.zip").state == UploadState.COMPLETE

    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.get_by_role("button", name="Forget interrupted uploads").click()
    assert deleted.value.status == 204
    expect(notice).to_be_hidden()
    assert page.evaluate(TUS_KEYS) == []
    assert Upload.objects.get(filename="other.dcm").state == UploadState.TERMINATED
    page.reload()
    page.wait_for_load_state("load")
    expect(page.get_by_test_id("upload-interrupted")).to_be_hidden()
