"""A study whose original was received lossy-compressed (JPEG baseline): its lossless-compressed
rendition was labelled as the original ("Original as received - lossy compressed, not
diagnostic-grade") on the study's page, and its zip as "Diagnostic - lossless compressed; ...". It
says what it is now, in the list, the download and its manifest alike (``models.label_for``): a
lossless copy of a lossy original, the same pixels as the original, not diagnostic-grade. The
original keeps its own label, and the viewer still says the original is lossy."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from pydicom.data.data_manager import DATA_ROOT

from apps.renditions.models import DIAGNOSTIC_LABELS, Kind, Label, Rendition, RenditionFile
from apps.renditions.packages import study_package
from apps.renditions.services import study_renditions_make
from tests.factories import CaseFactory
from tests.renditions.conftest import copy_files, ingest_folder
from tests.viewer.test_access_check import _mode

pytestmark = pytest.mark.django_db

LOSSLESS_OF_LOSSY = "Lossless copy of a lossy original - same pixels as the original, not diagnostic-grade"
LOSSY_ORIGINAL = "Original as received - lossy compressed, not diagnostic-grade"


@pytest.fixture
def lossy_study(org_a, tmp_path):
    """A ready study of one JPEG baseline image (lossy as received), its renditions made."""
    folder = copy_files([Path(DATA_ROOT) / "test_files" / "SC_jpeg_no_color_transform.dcm"], tmp_path / "in")
    [study] = ingest_folder(folder, org_a, case=CaseFactory(organization=org_a))
    study_renditions_make(study_id=study.pk)
    return study


def _download(client, study, kind: str):
    url = reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"
    response = client.get(url)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    [manifest] = [n for n in archive.namelist() if n.endswith("/MANIFEST.txt")]
    return response, archive.read(manifest).decode("utf-8")


def test_the_lossless_rendition_of_a_lossy_original_says_what_it_is(lossy_study):
    renditions = {r.kind: r for r in Rendition.objects.filter(study=lossy_study)}
    assert renditions[Kind.ORIGINAL].label == Label.LOSSY_SOURCE
    assert renditions[Kind.LOSSLESS].label == Label.LOSSLESS_OF_LOSSY
    assert renditions[Kind.LOSSLESS].get_label_display() == LOSSLESS_OF_LOSSY
    assert not renditions[Kind.LOSSLESS].is_diagnostic
    files = {f.kind: f for f in RenditionFile.objects.filter(study=lossy_study)}
    assert files[Kind.ORIGINAL].label == Label.LOSSY_SOURCE
    assert files[Kind.LOSSLESS].label == Label.LOSSLESS_OF_LOSSY
    assert files[Kind.PREVIEW].label == Label.PREVIEW_LOSSY  # the lossy kinds keep theirs
    assert not {f.label for f in files.values()} & DIAGNOSTIC_LABELS


def test_the_study_page_lists_it_as_a_lossless_copy_of_a_lossy_original(lossy_study, clinician_a, client_as):
    """Where a lossless copy was made of some of its images (a study partly received lossy); one
    made of none says there is none (tests/renditions/test_no_lossless_copy_row.py)."""
    from apps.renditions.models import Status

    Rendition.objects.filter(study=lossy_study, kind=Kind.LOSSLESS).update(status=Status.PARTIAL, files_ready=1)
    body = client_as(clinician_a).get(lossy_study.get_absolute_url()).content.decode()

    def badge(kind: str) -> tuple[str, str]:
        row = re.search(rf'<tr data-testid="rendition-{kind}">(.*?)</tr>', body, re.S).group(1)
        match = re.search(r'data-testid="rendition-badge" data-label="(\w+)">([^<]*)</span>', row)
        return match.group(1), match.group(2)

    assert badge("lossless") == ("lossless_of_lossy", LOSSLESS_OF_LOSSY)
    assert badge("original") == ("lossy_source", LOSSY_ORIGINAL)


def test_its_download_and_manifest_say_the_same_and_the_viewer_still_says_lossy(lossy_study, clinician_a,
                                                                                client_as):
    client = client_as(clinician_a)
    # its lossless copy could not be made (the page says "Not available"): not downloaded
    # (tests/renditions/test_mixed_and_unavailable_packages.py); a package of it says what it holds,
    # its originals standing in (tests/renditions/test_all_lossy_case_zip.py), not a lossless copy
    package = study_package(lossy_study, "lossless")
    stand_in = f"{LOSSY_ORIGINAL} (lossless compression not possible)"
    assert package.label == stand_in and package.filename.endswith("_LossySource.zip")
    manifest = package.entries[0].data.decode("utf-8")
    assert f"Label: {stand_in}\n" in manifest and "Diagnostic" not in manifest
    response, manifest = _download(client, lossy_study, "original")
    assert response["X-Lightbox-Label"] == LOSSY_ORIGINAL
    assert f"Label: {LOSSY_ORIGINAL}\n" in manifest and "Diagnostic" not in manifest
    page = client.get(reverse("viewer:viewer", kwargs={"study_id": lossy_study.public_id}))
    assert _mode(page.content.decode()) == ("lossy", "Original with lossy compression - not of diagnostic quality")



def test_rows_made_before_are_relabelled_by_the_migration(lossy_study):
    """Renditions made before said what the original is on the lossless rows: the migration
    relabels them (and only them)."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("apps.renditions.migrations.0007_lossless_of_lossy_label")
    for model in (Rendition, RenditionFile):
        model.objects.filter(study=lossy_study, kind=Kind.LOSSLESS).update(label=Label.LOSSY_SOURCE)
    migration.relabel_lossless_of_lossy(apps, None)
    for model in (Rendition, RenditionFile):
        labels = dict(model.objects.filter(study=lossy_study).values_list("kind", "label"))
        assert labels[Kind.LOSSLESS] == Label.LOSSLESS_OF_LOSSY and labels[Kind.ORIGINAL] == Label.LOSSY_SOURCE
