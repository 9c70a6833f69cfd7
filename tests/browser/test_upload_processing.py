"""The upload page once every byte is sent, and after leaving during the processing (found by QA
on the embedded default): it said "Uploading · 100%" while the server ingested the study; a tab
closed then left a false "Interrupted" banner beside the same upload listed Done; and a case
chosen said nothing of whom its studies reach."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.imaging import uploads
from apps.imaging.models import Study, Upload, UploadState
from apps.organizations.models import Role
from apps.sharing import services as sharing
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import signed_in_as
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TUS_KEYS = "() => Object.keys(localStorage).filter((k) => k.startsWith('tus::'))"
PLANT = """([key, owner, name, url]) => localStorage.setItem(key, JSON.stringify({
  size: 500, creationTime: new Date().toString(), uploadUrl: url,
  metadata: {filename: name, filetype: "application/octet-stream", "case": "", owner},
}))"""


def test_once_every_byte_is_sent_the_status_says_received_not_uploading(page, live_server, tmp_path, monkeypatch):
    """The server holds the last PATCH's answer (as the ingest in it did): every byte is sent, and
    the page says so, not "Uploading"; then the job's progress, and Done."""
    org = OrganizationFactory(slug="processing-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@processing.example")
    signed_in_as(page, live_server.url, user)
    paths = write_ct_series(tmp_path / "ct", slices=2, rows=64, columns=64)
    held, release = threading.Event(), threading.Event()
    complete = uploads.upload_complete

    def slow_complete(**kwargs):  # in the live server's thread: the body read, the answer not sent
        held.set()
        release.wait(30)
        return complete(**kwargs)

    monkeypatch.setattr(uploads, "upload_complete", slow_complete)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    page.locator("#upload-files").set_input_files([str(paths[0])])
    item = page.get_by_test_id("upload-item")
    try:
        expect(item).to_contain_text("Received, processing…", timeout=15_000)
        assert held.is_set()  # the last PATCH is still unanswered
        expect(item).not_to_contain_text("Uploading")
    finally:
        release.set()
    expect(item).to_contain_text("Done", timeout=60_000)
    expect(item).not_to_contain_text("Uploading")
    assert Study.objects.count() == 1


def test_a_finished_upload_left_in_the_browser_is_not_called_interrupted(page, live_server):
    """A tab closed after the last byte, while the server ingested the file, leaves tus-js-client's
    entry: the page asks the server before naming it, and forgets one the server finished."""
    org = OrganizationFactory(slug="finished-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@finished.example")
    finished = uploads.upload_create(organization=org, user=user, length=500, filename="qa_ct5.zip")
    Upload.objects.filter(pk=finished.pk).update(state=UploadState.COMPLETE, offset=500)
    unfinished = uploads.upload_create(organization=org, user=user, length=500, filename="half.zip")
    Upload.objects.filter(pk=unfinished.pk).update(offset=200)
    signed_in_as(page, live_server.url, user)
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    owner = str(user.public_id)
    page.evaluate(PLANT, ["tus::fp-done::1", owner, "qa_ct5.zip",
                          f"{live_server.url}/api/v1/uploads/{finished.public_id}/"])
    page.evaluate(PLANT, ["tus::fp-half::1", owner, "half.zip",
                          f"{live_server.url}/api/v1/uploads/{unfinished.public_id}/"])
    page.reload()
    page.wait_for_load_state("load")
    notice = page.get_by_test_id("upload-interrupted")
    expect(notice.get_by_test_id("interrupted-text")).to_have_text(
        "Interrupted: half.zip — choose the same file again to resume where it stopped.")
    expect(notice).not_to_contain_text("qa_ct5.zip")
    assert page.evaluate(TUS_KEYS) == ["tus::fp-half::1"]  # the finished one's entry is gone

    Upload.objects.filter(pk=unfinished.pk).update(state=UploadState.COMPLETE, offset=500)
    page.reload()
    page.wait_for_load_state("load")
    page.wait_for_function("() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length === 0")
    expect(notice).to_be_hidden()


def test_choosing_a_shared_case_says_whom_its_studies_reach(page, live_server):
    org = OrganizationFactory(slug="reach-org", mfa_required_roles=[])
    user = member(org, Role.CLINICIAN, email="doc@reach.example")
    shared = CaseFactory(organization=org, title="Chest CT - second opinion", created_by=user,
                         responsible_clinician=user)
    CaseFactory(organization=org, title="Not shared", created_by=user, responsible_clinician=user)
    consultant = member(org, Role.EXTERNAL_CONSULTANT, email="consultant@reach.example")
    sharing.grant_create(case=shared, grantee=consultant, by=user, permissions=["view"],
                         expires_at=timezone.now() + timedelta(hours=2))
    signed_in_as(page, live_server.url, user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/studies/upload/")
    page.wait_for_load_state("load")
    box = page.get_by_test_id("upload-case-reach")
    expect(box).to_be_hidden()
    page.get_by_label("Case", exact=True).select_option(label="Chest CT - second opinion")
    expect(box).to_be_visible()
    expect(box).to_contain_text("This case is shared as a whole: once uploaded, the study is also seen by")
    expect(box).to_contain_text("consultant@reach.example")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_label("Case", exact=True).select_option(label="Not shared")
    expect(box).to_contain_text("gives no one else access")
    expect(box).not_to_contain_text("consultant@reach.example")
    page.get_by_label("Case", exact=True).select_option(label="No case (attach later)")
    expect(box).to_be_hidden()
