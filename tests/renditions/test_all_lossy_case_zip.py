"""A case whose every study was received lossy-compressed: its lossless zip was served as
``..._Lossless.zip`` and labelled "Lossless copy of a lossy original - same pixels as the
original, not diagnostic-grade" (X-Lightbox-Label, MANIFEST's Label line), though it holds no
lossless copy at all: none is made of a lossy original (``encoders.lossless_encode``), so each
study's originals stand in, each file labelled "Original as received - lossy compressed, not
diagnostic-grade (lossless compression not possible)". The zip says what it holds now, as its
files and a single study's original say: its label is those originals', and its name and its
studies' folders end in ``_LossySource``, not ``_Lossless``. A mixed case's zip keeps its label
(the warning first) and its name; only the lossy study's folder says ``_LossySource``."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from pydicom.data.data_manager import DATA_ROOT

from apps.renditions.packages import study_package
from apps.renditions.services import study_renditions_make
from tests.factories import CaseFactory
from tests.renditions.conftest import copy_files, ingest_folder
from tests.renditions.test_mixed_and_unavailable_packages import MIXED, mixed_case  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

LOSSY_STAND_IN = "Original as received - lossy compressed, not diagnostic-grade (lossless compression not possible)"


@pytest.fixture
def lossy_case(org_a, tmp_path):
    """A case of two studies, each received lossy-compressed (JPEG baseline), renditions made."""
    case = CaseFactory(organization=org_a)
    studies = []
    for name in ("SC_jpeg_no_color_transform.dcm", "JPEG-lossy.dcm"):
        folder = copy_files([Path(DATA_ROOT) / "test_files" / name], tmp_path / name)
        studies += ingest_folder(folder, org_a, case=case)
    for study in studies:
        study_renditions_make(study_id=study.pk)
    assert len({s.pk for s in studies}) == 2
    return case


def _lossless(client, case):
    url = reverse("renditions:case_download", kwargs={"case_id": case.public_id}) + "?rendition=lossless"
    response = client.get(url)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    [manifest] = [n for n in archive.namelist() if n.endswith("/MANIFEST.txt")]
    return response, archive.read(manifest).decode("utf-8"), archive.namelist()


def test_an_all_lossy_cases_lossless_zip_says_its_images_were_lossy_at_the_source(lossy_case, clinician_a,
                                                                                   client_as):
    response, manifest, names = _lossless(client_as(clinician_a), lossy_case)
    assert response["X-Lightbox-Label"] == LOSSY_STAND_IN
    assert f"Label: {LOSSY_STAND_IN}\n" in manifest
    assert "Lossless copy" not in manifest and "Diagnostic" not in manifest
    # each file's own label is the same
    labels = set(re.findall(r"^[0-9a-f]{64}  \d+  (.+)  \S+\.dcm$", manifest, re.M))
    assert labels == {LOSSY_STAND_IN}
    # its name and its studies' folders say so too, not "_Lossless"
    name = re.search(r'filename="([^"]+)\.zip"', response["Content-Disposition"]).group(1)
    assert name.startswith(f"Case-{lossy_case.public_id.hex[:8]}_") and name.endswith("_LossySource"), name
    folders = {n.split("/")[1] for n in names if n.endswith(".dcm")}
    assert len(folders) == 2 and all(f.endswith("_LossySource") for f in folders), folders
    assert "Lossless" not in " ".join(names)


def test_a_mixed_cases_lossless_zip_keeps_its_name_its_lossy_studys_folder_says_so(mixed_case, clinician_a,  # noqa: F811
                                                                                   client_as):
    case = mixed_case[0]
    response, _manifest, names = _lossless(client_as(clinician_a), case)
    assert response["X-Lightbox-Label"].startswith(MIXED)
    assert response["Content-Disposition"].endswith('_Lossless.zip"')
    folders = {n.split("/")[1] for n in names if n.endswith(".dcm")}
    assert sorted(f.rsplit("_", 1)[1] for f in folders) == ["Lossless", "LossySource"], folders


LOSSY_CONTENTS = "originals as received (lossy; no lossless copy possible)"


def test_an_all_lossy_cases_lossless_zip_names_its_contents_as_its_label_does(lossy_case, clinician_a, client_as):
    """MANIFEST's Contents line said "Case (2 studies), Lossless compressed" right above a Label
    line saying the zip holds the originals as received, lossy (found by review of 5bc7b6d)."""
    _response, manifest, _names = _lossless(client_as(clinician_a), lossy_case)
    contents = re.search(r"^Contents: (.*)$", manifest, re.M).group(1)
    assert contents == f"Case (2 studies), {LOSSY_CONTENTS}"
    assert "Lossless compressed" not in manifest


def test_a_lossy_studys_lossless_package_names_its_contents_as_its_label_does(lossy_case):
    study = lossy_case.studies.order_by("pk").first()
    package = study_package(study, "lossless")
    data = b"".join(package.iter_range(0, package.size - 1))
    manifest = zipfile.ZipFile(io.BytesIO(data)).read(f"{package.name}/MANIFEST.txt").decode()
    assert re.search(r"^Contents: (.*)$", manifest, re.M).group(1) == f"Study, {LOSSY_CONTENTS}"


def test_a_mixed_cases_lossless_zip_keeps_naming_its_contents_lossless(mixed_case, clinician_a, client_as):  # noqa: F811
    _response, manifest, _names = _lossless(client_as(clinician_a), mixed_case[0])
    assert re.search(r"^Contents: (.*)$", manifest, re.M).group(1).endswith(", Lossless compressed")
