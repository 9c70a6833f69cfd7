"""The patient's path on a phone (390x844): the patient-education link, sign-in, the patient
portal with the share clearly labelled, and the education copy downloaded."""

from __future__ import annotations

import zipfile

import pytest
from playwright.sync_api import expect

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import Grant
from apps.sharing.usecases import RecipientKind, UseCase
from tests.browser.conftest import _only_local
from tests.factories import TEST_PASSWORD, CaseFactory, OrganizationFactory, PatientFactory, member
from tests.patient_links import link_patient_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _ready_study(org, case, folder):
    from apps.imaging.models import Study
    from apps.imaging.services import ingest_job_create, ingest_job_run
    from apps.renditions.services import study_renditions_make
    from bench.ingest.synthetic import write_ct_series

    write_ct_series(folder, slices=3, rows=64, columns=64)
    job = ingest_job_create(organization=org, source_path=str(folder), case=case, enqueue=False)
    ingest_job_run(job_id=job.pk)
    study = Study.objects.get(case=case)
    Study.objects.filter(pk=study.pk).update(study_description="CT chest")
    study_renditions_make(study_id=study.pk)
    return study


def test_patient_opens_education_link_on_a_phone_and_downloads(browser, live_server, output_dir, tmp_path):
    org = OrganizationFactory(name="Alpha Hospital", slug="alpha", mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN, email="owner@alpha.example", full_name="Casey Clinician")
    patient = member(org, Role.PATIENT, email="pat@alpha.example")
    # the MRN the synthetic series' images carry: a patient is given only studies of their own
    # patient ID (policy.held_back_from_patient)
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner,
                       patient=PatientFactory(organization=org, mrn="SYN-0001"))
    _ready_study(org, case, tmp_path / "ct")
    link_patient_account(patient, case.patient, case=case)  # the case's patient's own account (7011cfe)
    _grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.PATIENT_EDUCATION,
                                               recipient_kind=RecipientKind.USER, grantee=patient)
    base = live_server.url

    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US", accept_downloads=True)
    context.route("**/*", _only_local)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{base}/s/{raw}/")
    page.get_by_test_id("link-sign-in-button").click()  # the link's page says to sign in
    page.wait_for_url("**/accounts/login/**")
    page.get_by_label("E-mail address").fill(patient.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/portal/")

    share = page.get_by_test_id("education-share")
    expect(share).to_be_visible()
    expect(share.get_by_test_id("education-label")).to_have_text(
        "Patient education - low resolution, not for diagnosis")
    expect(share.get_by_test_id("shared-by")).to_have_text("Casey Clinician")
    expect(share.get_by_text("CT chest")).to_be_visible()
    # the copy's images are shown in the page, decoded, labelled, within the screen's width
    images = share.get_by_test_id("education-image")
    expect(images).to_have_count(1)
    expect(images.first).to_be_visible()
    assert images.first.evaluate("img => img.complete && img.naturalWidth > 0")
    img_box = images.first.bounding_box()
    assert img_box is not None and img_box["width"] > 100 and img_box["x"] + img_box["width"] <= 390
    expect(share.get_by_test_id("education-images")).to_contain_text("Not for diagnosis")
    # fits the phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    button = share.get_by_test_id("education-download")
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 390
    page.screenshot(path=str(output_dir / "education_portal_phone.png"), full_page=True)

    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(download.path()) as archive:
        names = archive.namelist()
    assert any("/ED" in n and n.endswith(".jpg") for n in names), names  # pictures a phone opens
    assert not any(n.endswith(".dcm") for n in names)
    assert Grant.objects.get().download_count == 1
    context.close()
