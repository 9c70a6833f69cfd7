"""An upload whose ingest fails as a whole (here: storage that cannot be written, still failing
after the retries) says on the upload page why and what can be done, not a bare "Failed"."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.imaging.models import IngestJob, JobState
from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.browser.conftest import signed_in_as
from tests.factories import OrganizationFactory, member
from tests.imaging.test_storage_down import storage_unwritable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_ingest_that_failed_says_why_and_what_to_do(page, live_server, tmp_path):
    # Celery runs eagerly here: the ingest's retries run in the request, one after another
    org = OrganizationFactory(slug="failing-org", mfa_required_roles=[])
    user = member(org, Role.RADIOLOGIST, email="rad@failing.example")
    signed_in_as(page, live_server.url, user)
    path = write_ct_series(tmp_path / "ct", slices=1, rows=64, columns=64)[0]
    page.goto(f"{live_server.url}/studies/upload/")
    with storage_unwritable(tmp_path):
        page.get_by_label("Choose files or a zip").set_input_files([str(path)])
        note = page.get_by_test_id("upload-item").get_by_test_id("job-failure")
        expect(note).to_be_visible(timeout=60_000)
    job = IngestJob.objects.get()
    assert job.state == JobState.FAILED
    expect(note).to_have_attribute("data-code", "storage_unavailable")
    expect(note).to_contain_text("Nothing you sent is lost")
    expect(note).to_contain_text(f"manage.py ingest --resume {job.public_id}")
    # "Your recent uploads" says it too, as the page does reloaded
    expect(page.get_by_test_id("recent-uploads").get_by_test_id("job-failure")).to_contain_text(
        "Nothing you sent is lost")
    page.reload()
    expect(page.get_by_test_id("recent-uploads").get_by_test_id("job-failure")).to_contain_text(
        f"manage.py ingest --resume {job.public_id}")
