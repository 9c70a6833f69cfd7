"""A case whose studies are diagnostic but one, received lossy-compressed (JPEG baseline): its
lossless and original zips were labelled as a whole as that one study is ("Lossless copy of a lossy
original ...", "Original as received - lossy compressed ...") though most of their files are
diagnostic, and said so on their own rows. A mixed package now says first that not all of it is
diagnostic-grade, some images lossy-compressed at the source, then the others' (diagnostic) label
(``packages._package_label``: a reviewer found the label starting "Diagnostic original"); a package
all of one kind keeps that kind's label.

That study's page says its lossless copy is "Not available" (``encoders.lossless_encode`` refuses a
lossy original) and offers no download of it, yet its lossless download gave a ``_Lossless.zip`` of
its lossy originals: the download is refused now (404, a page that says why), as the page says; its
original is downloaded as before, and a case's lossless zip keeps that study's originals, each
labelled as such."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from pydicom.data.data_manager import DATA_ROOT

from apps.renditions.models import Kind, Label, Rendition, Status
from apps.renditions.services import study_renditions_make
from tests.factories import CaseFactory
from tests.renditions.conftest import copy_files, ingest_folder

pytestmark = pytest.mark.django_db

MIXED = ("Not all diagnostic-grade: some images were lossy-compressed at the source (each file's own label is "
         "in MANIFEST.txt); the others: ")
LOSSY_FILE = "Original as received - lossy compressed, not diagnostic-grade"


@pytest.fixture
def mixed_case(org_a, tmp_path, small_ct):
    """A case of a diagnostic CT study (6 images) and a JPEG baseline study (lossy as received),
    their renditions made: (case, ct study, lossy study)."""
    case = CaseFactory(organization=org_a)
    [ct] = ingest_folder(small_ct, org_a, case=case)
    folder = copy_files([Path(DATA_ROOT) / "test_files" / "SC_jpeg_no_color_transform.dcm"], tmp_path / "in")
    [lossy] = ingest_folder(folder, org_a, case=case)
    for study in (ct, lossy):
        study_renditions_make(study_id=study.pk)
    return case, ct, lossy


def _zip(response) -> tuple[str, dict[str, str]]:
    """The package's MANIFEST.txt and each file's label, by its path."""
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    [name] = [n for n in archive.namelist() if n.endswith("/MANIFEST.txt")]
    manifest = archive.read(name).decode("utf-8")
    rows = re.findall(r"^[0-9a-f]{64}  \d+  (.+)  (\S+)$", manifest, re.M)
    return manifest, {path: label for label, path in rows}


def test_a_case_zip_of_diagnostic_and_lossy_source_studies_says_it_is_mixed(mixed_case, clinician_a, client_as):
    case = mixed_case[0]
    client = client_as(clinician_a)
    url = reverse("renditions:case_download", kwargs={"case_id": case.public_id})
    for kind, diagnostic, lossy_file in (
            ("lossless", Label.DIAGNOSTIC_LOSSLESS.label, f"{LOSSY_FILE} (lossless compression not possible)"),
            ("original", Label.DIAGNOSTIC_ORIGINAL.label, LOSSY_FILE)):
        response = client.get(f"{url}?rendition={kind}")
        assert response.status_code == 200
        label = f"{MIXED}{diagnostic}"  # the warning first: the label never starts by claiming diagnostic
        assert response["X-Lightbox-Label"] == label
        manifest, files = _zip(response)
        assert f"Label: {label}\n" in manifest
        # each file still says what it is: the CT's diagnostic, the lossy study's lossy as received
        labels = sorted(set(files.values()))
        assert labels == sorted({diagnostic, lossy_file}), labels
        assert sum(1 for v in files.values() if v == diagnostic) == 6


def test_a_package_all_of_one_kind_keeps_that_kinds_label(mixed_case, clinician_a, client_as):
    case, ct, lossy = mixed_case
    client = client_as(clinician_a)
    for study, kind, label in ((ct, "lossless", Label.DIAGNOSTIC_LOSSLESS.label),
                               (ct, "original", Label.DIAGNOSTIC_ORIGINAL.label),
                               (lossy, "original", LOSSY_FILE),
                               (ct, "preview", Label.PREVIEW_LOSSY.label)):
        url = reverse("renditions:study_download", kwargs={"study_id": study.public_id})
        response = client.get(f"{url}?rendition={kind}")
        assert response.status_code == 200
        assert response["X-Lightbox-Label"] == label
        assert f"Label: {label}\n" in _zip(response)[0]
    # a preview's label is the same whatever the source: a case's preview is not "mixed"
    url = reverse("renditions:case_download", kwargs={"case_id": case.public_id})
    response = client.get(f"{url}?rendition=preview")
    assert response["X-Lightbox-Label"] == Label.PREVIEW_LOSSY.label


def test_the_lossless_copy_the_study_page_says_is_not_available_is_not_downloaded(mixed_case, clinician_a,
                                                                                   client_as):
    case, ct, lossy = mixed_case
    client = client_as(clinician_a)
    assert Rendition.objects.get(study=lossy, kind=Kind.LOSSLESS).status == Status.UNAVAILABLE
    page = client.get(lossy.get_absolute_url()).content.decode()
    row = re.search(r'<tr data-testid="rendition-lossless">(.*?)</tr>', page, re.S).group(1)
    # one statement: there is no lossless copy (tests/renditions/test_no_lossless_copy_row.py)
    assert "No lossless copy" in row and "Not offered" in row and 'data-testid="download-lossless"' not in row
    url = reverse("renditions:study_download", kwargs={"study_id": lossy.public_id})
    for method in (client.get, client.head):
        response = method(f"{url}?rendition=lossless")
        assert response.status_code == 404
        assert "Content-Disposition" not in response and "X-Lightbox-Label" not in response
    body = client.get(f"{url}?rendition=lossless").content.decode()
    assert 'data-testid="rendition-not-available"' in body
    assert "already lossy-compressed" in body  # why, as the study's page says it
    # what the page offers is downloaded as before: its original, and the other study's lossless copy
    assert client.get(f"{url}?rendition=original").status_code == 200
    ct_url = reverse("renditions:study_download", kwargs={"study_id": ct.public_id})
    assert client.get(f"{ct_url}?rendition=lossless").status_code == 200
    # the case's lossless zip keeps that study, its folder holding its originals labelled as such
    case_url = reverse("renditions:case_download", kwargs={"case_id": case.public_id})
    files = _zip(client.get(f"{case_url}?rendition=lossless"))[1]
    assert sum(1 for v in files.values() if v.startswith(LOSSY_FILE)) == 1


def test_the_shared_case_page_offers_no_download_the_study_does_not_have(mixed_case, clinician_a, client_as):
    """A reviewer: a recipient's shared-case page offered the preview zip of a study whose preview
    is not available (its task given up), a button that could only fail (404, ``_not_available``).
    The page offers what each study has."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.organizations.models import Role
    from apps.renditions.models import Rendition, Status
    from apps.sharing import services
    from tests.factories import member

    case, ct, lossy = mixed_case
    Rendition.objects.filter(study=ct, kind="preview").update(status=Status.UNAVAILABLE)
    recipient = member(case.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    # a share naming the studies: each study's own download is offered (no case zip)
    services.grant_create(case=case, grantee=recipient, permissions=["view", "download_preview"], by=clinician_a,
                          renditions=["preview"], download_limit=5, expires_at=timezone.now() + timedelta(hours=24),
                          studies=[ct, lossy])
    client = client_as(recipient)
    page = client.get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id})).content.decode()
    offered = {study: reverse("renditions:study_download", kwargs={"study_id": study.public_id})
               + "?rendition=preview" for study in (ct, lossy)}
    assert offered[lossy] in page and offered[ct] not in page
    assert client.get(offered[ct]).status_code == 404 and client.get(offered[lossy]).status_code == 200
