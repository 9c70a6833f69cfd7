"""Downloads on an anonymous link without a second factor leave out the images whose pixels may
identify the patient (found by security review: the zips held every image, burned-in patient text
included): the study's and the case's preview zips hold none of their bytes, and MANIFEST.txt says
why; the other images are there. The same share with a passcode, a named recipient and staff get
every image (``policy.withholds_identifying_pixels``, ``DownloadDecision.withholds_identifying_pixels``)."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.imaging.models import Instance
from apps.organizations.models import Role
from apps.renditions.models import Kind, RenditionFile
from apps.sharing import services as sharing
from tests.factories import LINK_PASSCODE, anonymous_preview_holder, member

pytestmark = pytest.mark.django_db


def _study_url(study):
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + "?rendition=preview"


def _case_url(case):
    return reverse("renditions:case_download", kwargs={"case_id": case.public_id}) + "?rendition=preview"


def _zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.status_code
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def _image_bytes(archive: zipfile.ZipFile) -> set[bytes]:
    return {archive.read(name) for name in archive.namelist() if name.endswith(".jpg")}


def _manifest(archive: zipfile.ZipFile) -> str:
    return archive.read(next(n for n in archive.namelist() if n.endswith("MANIFEST.txt"))).decode()


def _link_holder(study, owner, **terms) -> Client:
    return anonymous_preview_holder(study, owner, download_limit=5, **terms)


@pytest.fixture
def owner(org_a):
    return member(org_a, Role.CLINICIAN, email="owner@alpha.example")


@pytest.fixture
def previews(ct_study):
    """The study's preview files' bytes, by instance: the flagged one's (the second slice) apart."""
    from apps.imaging.blobs import open_blob

    files = RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW).select_related("blob", "instance")
    found = {}
    for f in files:
        with open_blob(f.blob) as fh:
            found[f.instance_id] = fh.read()
    assert len(found) == 6
    flagged = Instance.objects.filter(study=ct_study).order_by("instance_number")[1]
    Instance.objects.filter(pk=flagged.pk).update(pixels_may_identify=True)
    return found.pop(flagged.pk), set(found.values())


def test_a_link_without_a_second_factor_gets_zips_without_the_flagged_image(ct_study, owner, previews):
    withheld, others = previews
    holder = _link_holder(ct_study, owner)
    for url in (_study_url(ct_study), _case_url(ct_study.case)):
        archive = _zip(holder.get(url))
        images = _image_bytes(archive)
        assert withheld not in images
        assert images == others  # the other five are there
        assert "it is not included through this link" in _manifest(archive)


def test_the_same_link_with_a_passcode_gets_every_image(ct_study, owner, previews):
    withheld, others = previews
    holder = _link_holder(ct_study, owner, second_factor="passcode", passcode=LINK_PASSCODE)
    archive = _zip(holder.get(_study_url(ct_study)))
    assert _image_bytes(archive) == others | {withheld}
    assert "through this link" not in _manifest(archive)


def test_a_named_recipient_and_staff_get_every_image(ct_study, owner, previews, client_as):
    withheld, others = previews
    consultant = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    sharing.grant_create(case=ct_study.case, grantee=consultant, by=owner, permissions=["view", "download_preview"],
                         renditions=["preview"], download_limit=3, expires_at=timezone.now() + timedelta(hours=2))
    for who in (consultant, owner):
        assert _image_bytes(_zip(client_as(who).get(_study_url(ct_study)))) == others | {withheld}
