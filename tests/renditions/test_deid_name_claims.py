"""A package is named ``_DeID`` and its manifest says "De-identified: yes" only when every file
is what the de-identification profile would let leave (apps.renditions.encoders
.identity_verified, apps.deid.profile.deidentified): a file the profile made, then marked as
having text burned into its pixels (or a screen save, or saying it kept the original's UIDs, or
given a comment naming its patient), is not counted de-identified, though it still says Patient
Identity Removed = YES and nothing the table acts on is left in its header.

Synthetic data only (bench.ingest.synthetic: a fictional patient)."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from pydicom.dataset import Dataset

from apps.deid.profile import deidentify_file, identity_left
from apps.renditions.packages import study_package
from bench.ingest.synthetic import write_ct_series
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db


def _manifest_of(package) -> str:
    data = b"".join(package.iter_range(0, package.size - 1))
    return zipfile.ZipFile(io.BytesIO(data)).read(f"{package.name}/MANIFEST.txt").decode()


def _burned_in(ds: Dataset) -> None:
    ds.BurnedInAnnotation = "YES"  # the pixels carry the patient's name


def _screen_save(ds: Dataset) -> None:
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]  # a CT dose report


def _retained_uids(ds: Dataset) -> None:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "113110", "DCM", "Retain UIDs Option"
    ds.DeidentificationMethodCodeSequence.append(code)


def _comment(ds: Dataset) -> None:
    ds.CommentsOnTheScheduledProcedureStep = "Pt lives at 14 Elmquist Rd"


@pytest.mark.parametrize("change", [_burned_in, _screen_save, _retained_uids, _comment],
                         ids=["burned_in", "screen_save", "retained_uids", "comment"])
def test_no_deid_suffix_for_a_profile_output_whose_pixels_uids_or_text_may_identify(org_a, tmp_path, change):
    folder = tmp_path / "deid"
    paths = write_ct_series(folder, slices=2, rows=16, columns=16)
    for p in paths:
        p.write_bytes(deidentify_file(p.read_bytes(), pseudonym="", key=b"test-key" * 4).data)
    ds = pydicom.dcmread(paths[0])
    change(ds)
    ds.save_as(paths[0], enforce_file_format=True)
    assert ds.PatientIdentityRemoved == "YES"
    if change is not _comment:  # nothing the table acts on is left: the header alone passes
        assert identity_left(ds) == []
    [study] = ingest_folder(folder, org_a)
    for kind in ("original", "preview"):
        package = study_package(study, kind)
        assert "_DeID" not in package.name
        assert "De-identified: no" in _manifest_of(package)
