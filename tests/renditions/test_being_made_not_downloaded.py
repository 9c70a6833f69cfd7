"""A rendition still being made was downloaded as far as it was made: whoever had (or guessed) the
download address of a study's preview, lossless copy or education copy, or of its case's zip,
while the renditions task still ran got a zip lacking the images not made yet (a lossless one
holding their originals in their place, labelled "lossless compression not possible"), though the
study's page offers no download of it ("Being made", "Not offered"). It is refused now, whoever
asks (staff, a recipient, an anonymous link's holder), GET and HEAD alike: 409, a page saying it is
still being prepared and how far, never a part of it; nothing is counted on a share. Once made, it
is downloaded as before; the original is always there."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.renditions.models import Kind, RenditionFile, Status, renditions_progress
from apps.renditions.services import study_renditions_make
from tests.factories import CaseFactory, PatientFactory
from tests.renditions.conftest import ingest_folder
from tests.renditions.test_resume import Share

pytestmark = pytest.mark.django_db


@pytest.fixture
def unmade(org_a, tmp_path):
    """A ready 6-slice CT study whose renditions task has not run yet (ingested, nothing made), in a
    case of the synthetic series' patient (its MRN is their patient ID: a patient is given it)."""
    from bench.ingest.synthetic import write_ct_series

    write_ct_series(tmp_path / "unmade", slices=6, rows=64, columns=64)
    case = CaseFactory(organization=org_a, patient=PatientFactory(organization=org_a, mrn="SYN-0001"))
    [study] = ingest_folder(tmp_path / "unmade", org_a, case=case)
    return study


def _study_url(study, kind: str) -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _case_url(case, kind: str) -> str:
    return reverse("renditions:case_download", kwargs={"case_id": case.public_id}) + f"?rendition={kind}"


def _assert_being_prepared(response) -> None:
    assert response.status_code == 409, response.status_code
    assert "Content-Disposition" not in response and "X-Lightbox-Label" not in response
    assert "ETag" not in response and response["Retry-After"] == "60"
    assert response["Content-Type"].startswith("text/html")


def test_a_rendition_being_made_is_not_downloaded_until_made(unmade, clinician_a, client_as):
    client = client_as(clinician_a)
    for kind, images in ((Kind.PREVIEW, 6), (Kind.LOSSLESS, 6), (Kind.EDUCATION, 1)):
        for method in (client.get, client.head):
            _assert_being_prepared(method(_study_url(unmade, kind)))
        body = client.get(_study_url(unmade, kind)).content.decode()
        assert 'data-testid="rendition-being-prepared"' in body and "still being made" in body
        assert f"0 of {images} images made." in body
    # the original is always there
    assert client.get(_study_url(unmade, Kind.ORIGINAL)).status_code == 200
    study_renditions_make(study_id=unmade.pk)
    for kind in (Kind.PREVIEW, Kind.LOSSLESS, Kind.EDUCATION):
        response = client.get(_study_url(unmade, kind))
        assert response.status_code == 200 and b"".join(response.streaming_content)


def test_images_not_made_yet_refuse_a_rendition_made_before(ct_study, clinician_a, client_as):
    """A rendition made, then images without a file of it (added to the study since, their task
    not run yet): its zip would lack them, the lossless one hold their originals in their place."""
    client = client_as(clinician_a)
    assert client.get(_study_url(ct_study, Kind.LOSSLESS)).status_code == 200
    for kind in (Kind.PREVIEW, Kind.LOSSLESS):
        RenditionFile.objects.filter(study=ct_study, kind=kind).order_by("pk").last().delete()
        response = client.get(_study_url(ct_study, kind))
        _assert_being_prepared(response)
        assert "5 of 6 images made." in response.content.decode()
    assert client.get(_study_url(ct_study, Kind.EDUCATION)).status_code == 200  # made whole


def test_a_rendition_that_could_not_be_made_is_not_being_made(ct_study):
    """Images whose file could not be made are made (their row says why): the rendition is not
    waited for. A rendition given up is "Not available", refused as such (404), not waited for."""
    RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW).update(status=Status.UNAVAILABLE)
    progress = renditions_progress([ct_study.pk], Kind.PREVIEW)[ct_study.pk]
    assert not progress.being_made and (progress.made, progress.images) == (6, 6)
    from apps.renditions.models import Rendition

    Rendition.objects.filter(study=ct_study, kind=Kind.PREVIEW).update(status=Status.UNAVAILABLE)
    RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW).delete()
    progress = renditions_progress([ct_study.pk], Kind.PREVIEW)[ct_study.pk]
    assert progress.unavailable and not progress.being_made
    assert renditions_progress([ct_study.pk], Kind.ORIGINAL) == {}


def test_a_case_zip_waits_for_every_study(org_a, ct_study, unmade, clinician_a, client_as):
    """A case's zip while one of its studies' rendition is being made: refused, not sent without
    that study's images; its original zip is always there."""
    from apps.imaging.models import Study

    Study.objects.filter(pk=unmade.pk).update(case=ct_study.case)
    client = client_as(clinician_a)
    for kind in (Kind.PREVIEW, Kind.LOSSLESS, Kind.EDUCATION):
        for method in (client.get, client.head):
            _assert_being_prepared(method(_case_url(ct_study.case, kind)))
    body = client.get(_case_url(ct_study.case, Kind.PREVIEW)).content.decode()
    assert "of one study of this case is still being made" in body and "0 of 6 images made." in body
    assert client.get(_case_url(ct_study.case, Kind.ORIGINAL)).status_code == 200
    study_renditions_make(study_id=unmade.pk)
    for kind in (Kind.PREVIEW, Kind.LOSSLESS, Kind.EDUCATION):
        assert client.get(_case_url(ct_study.case, kind)).status_code == 200


@pytest.mark.parametrize("how", ["recipient", "link_holder"])
def test_a_share_or_a_link_gets_no_part_either_and_nothing_is_counted(unmade, clinician_a, how):
    share = Share(unmade, clinician_a, how)
    for url in (_study_url(unmade, Kind.PREVIEW), _case_url(unmade.case, Kind.PREVIEW)):
        _assert_being_prepared(share.client.get(url))
        _assert_being_prepared(share.client.get(url, headers={"Range": "bytes=100-"}))
    share.grant.refresh_from_db()
    assert share.grant.download_count == 0
    study_renditions_make(study_id=unmade.pk)
    assert share.client.get(_study_url(unmade, Kind.PREVIEW)).status_code == 200
