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


def _refuse_patch(route):
    """Every chunk refused: an upload is created (its entry stored) and stops at 0 bytes."""
    if route.request.method == "PATCH":
        route.fulfill(status=400, body="no", headers={"Tus-Resumable": "1.0.0", "Content-Type": "text/plain"})
    else:
        route.continue_()


def test_interrupted_uploads_are_named_after_a_reload_and_can_be_forgotten(page, live_server, tmp_path):
    org = OrganizationFactory(slug="interrupted-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@interrupted.example")
    signed_in_as(page, live_server.url, user)
    scan, other = tmp_path / "scan.zip", tmp_path / "other.dcm"
    scan.write_bytes(b"\0" * 500)
    other.write_bytes(b"\1" * 600)

    # every chunk refused: both uploads are created (their entries stored) and stop at 0 bytes
    page.route("**/api/v1/uploads/*/", _refuse_patch)
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


PLANT = """([key, owner, name, url]) => localStorage.setItem(key, JSON.stringify({
  size: 500, creationTime: new Date().toString(), uploadUrl: url,
  metadata: Object.assign({filename: name, filetype: "application/octet-stream", "case": ""},
                          owner === null ? {} : {owner}),
}))"""


def test_an_interrupted_upload_is_shown_only_to_its_owner_another_user_of_the_browser_never_sees_it(
        page, live_server):
    """A session ended by closing the browser (no sign-out, so no Clear-Site-Data): the next user
    of the browser sees nothing of the previous user's interrupted uploads, whose entries go."""
    org = OrganizationFactory(slug="owner-org", mfa_required_roles=[])
    a = member(org, Role.RADIOLOGIST, email="a@owner.example")
    other_org = OrganizationFactory(slug="other-owner-org", mfa_required_roles=[])
    b = member(other_org, Role.RADIOLOGIST, email="b@owner.example")
    name = "DOE^JOHN_MRN1234/IM0001.dcm"
    url = f"{live_server.url}/api/v1/uploads/00000000-0000-0000-0000-000000000001/"
    notice = page.get_by_test_id("upload-interrupted")

    def visit(user):
        page.context.clear_cookies()  # the browser closed: the session cookie is gone
        signed_in_as(page, live_server.url, user)
        page.goto(f"{live_server.url}/studies/upload/")
        page.wait_for_load_state("load")

    visit(a)
    assert page.locator("#upload-form").get_attribute("data-owner") == str(a.public_id)
    page.evaluate(PLANT, ["tus::fp-a::1", str(a.public_id), name, url])
    page.evaluate(PLANT, ["tus::fp-none::1", None, "NOONE^X/IM0002.dcm", url])
    page.reload()
    page.wait_for_load_state("load")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(name)
    expect(notice).not_to_contain_text("NOONE")  # an entry with no owner is no one's: removed
    assert page.evaluate(TUS_KEYS) == ["tus::fp-a::1"]

    visit(b)
    expect(notice).to_be_hidden()
    expect(page.locator("body")).not_to_contain_text("DOE^JOHN")
    assert page.evaluate(TUS_KEYS) == []

    visit(a)
    page.evaluate(PLANT, ["tus::fp-a::1", str(a.public_id), name, url])
    page.reload()
    page.wait_for_load_state("load")
    expect(notice).to_be_visible()
    expect(notice.get_by_test_id("interrupted-text")).to_have_text(
        f"Interrupted: {name} — choose the same file again to resume where it stopped.")


def test_an_upload_begun_here_stores_its_owner_and_is_not_resumed_by_another_user(page, live_server, tmp_path):
    org = OrganizationFactory(slug="owner-meta-org", mfa_required_roles=[])
    a = member(org, Role.RADIOLOGIST, email="a@owner-meta.example")
    b = member(org, Role.RADIOLOGIST, email="b@owner-meta.example")
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(b"\0" * 500)

    signed_in_as(page, live_server.url, a)
    page.route("**/api/v1/uploads/*/", _refuse_patch)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    page.locator("#upload-files").set_input_files([str(scan)])
    expect(page.get_by_test_id("upload-item")).to_contain_text("The server refused this upload: no")
    owners = page.evaluate("() => Object.keys(localStorage).filter((k) => k.startsWith('tus::'))"
                           ".map((k) => JSON.parse(localStorage.getItem(k)).metadata.owner)")
    assert owners == [str(a.public_id)]
    upload = Upload.objects.get(filename="scan.dcm")
    assert "owner" not in upload.metadata  # the server keeps only what it knows
    page.unroute("**/api/v1/uploads/*/")

    page.context.clear_cookies()
    signed_in_as(page, live_server.url, b)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    expect(page.get_by_test_id("upload-interrupted")).to_be_hidden()
    assert page.evaluate(TUS_KEYS) == []


def test_forget_sends_a_delete_only_to_an_upload_of_the_tus_endpoint(page, live_server):
    org = OrganizationFactory(slug="forget-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@forget.example")
    signed_in_as(page, live_server.url, user)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    owner = str(user.public_id)
    page.evaluate(PLANT, ["tus::fp-1::1", owner, "elsewhere.dcm", f"{live_server.url}/studies/upload/"])
    page.evaluate(PLANT, ["tus::fp-2::1", owner, "root.dcm", f"{live_server.url}/api/v1/uploads/"])
    page.evaluate(PLANT, ["tus::fp-3::1", owner, "lookalike.dcm", f"{live_server.url}/api/v1/uploadsx/1/"])
    page.evaluate(PLANT, ["tus::fp-4::1", owner, "upload.dcm",
                          f"{live_server.url}/api/v1/uploads/00000000-0000-0000-0000-000000000002/"])
    page.reload()
    page.wait_for_load_state("load")
    notice = page.get_by_test_id("upload-interrupted")
    expect(notice).to_contain_text("elsewhere.dcm")
    deletes = []
    page.on("request", lambda r: deletes.append(r.url) if r.method == "DELETE" else None)
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        page.get_by_role("button", name="Forget interrupted uploads").click()
    expect(notice).to_be_hidden()
    page.wait_for_timeout(300)
    assert deletes == [f"{live_server.url}/api/v1/uploads/00000000-0000-0000-0000-000000000002/"]
    assert page.evaluate(TUS_KEYS) == []
