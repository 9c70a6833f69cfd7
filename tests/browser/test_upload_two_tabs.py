"""Two tabs of one browser upload the same file at once: the second tab's tus-js-client finds the
first one's upload (its fingerprint in localStorage) and resumes it while the first is still
sending. Both tabs end with the study ready, and the stored file is the one chosen, byte for
byte (the server's appends were cut back under each other: "not a DICOM file")."""

from __future__ import annotations

import hashlib
import time

import pytest
from pydicom.uid import generate_uid

from apps.imaging.models import Instance, Study, Upload
from apps.organizations.models import Role
from bench.ingest.synthetic import ct_slice
from tests.browser.conftest import signed_in_as
from tests.factories import OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: upload.js's chunk (LIGHTBOX_UPLOAD_CHUNK_BYTES, set small here: a file of a few chunks is
#: ingested in a moment, where the 16 MiB default needed an 18 MB image)
CHUNK = 256 * 1024
#: bytes a second each tab sends (Chromium's network emulation): the first tab's first chunk
#: takes two seconds, so the second tab resumes while it is sent
UPLOAD_RATE = CHUNK // 2


def test_two_tabs_sending_the_same_file_store_it_intact(page, live_server, tmp_path, settings):
    settings.LIGHTBOX_UPLOAD_CHUNK_BYTES = CHUNK
    org = OrganizationFactory(slug="tabs-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@tabs.example")
    signed_in_as(page, live_server.url, user)
    source = tmp_path / "big.dcm"
    ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=512,
             columns=512).save_as(source, enforce_file_format=True)
    data = source.read_bytes()
    assert len(data) > 2 * CHUNK  # more than one chunk
    tabs = [page, page.context.new_page()]
    for tab in tabs:
        tab.goto(f"{live_server.url}/studies/upload/")
        cdp = page.context.new_cdp_session(tab)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 5, "downloadThroughput": -1,
                                                      "uploadThroughput": UPLOAD_RATE})
    statuses: list[int] = []
    for tab in tabs:
        tab.on("response", lambda r: statuses.append(r.status) if r.request.method == "PATCH" else None)
    with tabs[0].expect_response(lambda r: r.request.method == "POST" and "/api/v1/uploads/" in r.url):
        tabs[0].get_by_label("Choose files or a zip").set_input_files(str(source))
    time.sleep(1)  # the first chunk under way
    tabs[1].get_by_label("Choose files or a zip").set_input_files(str(source))
    for tab in tabs:  # the report's first line: the study, or why the file was skipped
        report = tab.locator("[data-testid=upload-item] .report li").first
        report.wait_for(timeout=90_000)
        assert "Ready" in report.inner_text(), report.inner_text()
    assert Upload.objects.count() == 1, "the second tab resumed the first one's upload"
    assert 409 in statuses, f"the tabs never met: {statuses}"
    assert Study.objects.get().is_ready
    expected = hashlib.sha256(data).hexdigest()
    assert list(Instance.objects.values_list("sha256", flat=True)) == [expected]
