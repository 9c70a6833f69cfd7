"""An original is called diagnostic-grade only when its transfer syntax is known to be lossless:
the retired lossy JPEG processes, JPEG XL recompressed from a JPEG (or possibly lossy) and any
transfer syntax the portal does not know are lossy, even without Lossy Image Compression = 01; and
an original whose header cannot be read when its renditions are made is judged by the transfer
syntax its ingest recorded."""

from __future__ import annotations

import shutil

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from apps.imaging import pixels
from apps.renditions import encoders
from apps.renditions.models import Kind, Label, RenditionFile
from apps.renditions.services import study_renditions_make
from tests.dicomfiles import pydicom_file, read_dataset
from tests.renditions.conftest import ingest_folder

RETIRED_LOSSY_JPEG = "1.2.840.10008.1.2.4.52"


def _header(tsuid: str, flag: str | None = None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = tsuid
    if flag is not None:
        ds.LossyImageCompression = flag
    return ds


@pytest.mark.parametrize("tsuid", [
    "1.2.840.10008.1.2.4.50", RETIRED_LOSSY_JPEG, "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.59",
    "1.2.840.10008.1.2.4.64", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112",
    "1.2.3.4.5.6.7",  # a private transfer syntax: unknown, so not called lossless
])
def test_lossy_or_unknown_transfer_syntaxes_are_lossy_without_the_flag(tsuid):
    assert pixels.header_lossy(_header(tsuid))


@pytest.mark.parametrize("tsuid", [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.91",  # lossy or not: its codestream decides (irreversibly_coded)
])
def test_lossless_transfer_syntaxes_keep_the_flags_word(tsuid):
    assert not pixels.header_lossy(_header(tsuid))
    assert pixels.header_lossy(_header(tsuid, flag="01"))


def _retired_jpeg_file(path) -> None:
    """CT_small's header with a retired lossy JPEG transfer syntax (process 3 & 5) and no Lossy
    Image Compression; its one frame is not a real codestream (only the label is looked at)."""
    ds = read_dataset(pydicom_file("CT_small.dcm"))
    ds.PixelData = encapsulate([b"\xff\xd8" + bytes(64) + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RETIRED_LOSSY_JPEG
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword in ("LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(path, enforce_file_format=True)


def _original_label(study) -> str:
    return RenditionFile.objects.get(instance__study=study, kind=Kind.ORIGINAL).label


def test_a_retired_lossy_jpeg_original_is_not_labelled_diagnostic(org_a, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _retired_jpeg_file(folder / "lossy.dcm")
    [study] = ingest_folder(folder, org_a)
    study_renditions_make(study_id=study.pk, kinds=[Kind.ORIGINAL])
    assert _original_label(study) == Label.LOSSY_SOURCE


@pytest.mark.parametrize(("lossy", "label"), [(True, Label.LOSSY_SOURCE), (False, Label.DIAGNOSTIC_ORIGINAL)])
def test_an_original_whose_header_cannot_be_read_is_judged_by_its_recorded_transfer_syntax(
        org_a, tmp_path, monkeypatch, lossy, label):
    folder = tmp_path / "in"
    folder.mkdir()
    if lossy:
        _retired_jpeg_file(folder / "one.dcm")
    else:
        shutil.copy(pydicom_file("CT_small.dcm"), folder / "one.dcm")
    [study] = ingest_folder(folder, org_a)

    def unreadable(data):
        raise encoders.NotEncodable("the header cannot be read")

    monkeypatch.setattr(encoders, "source_facts", unreadable)
    study_renditions_make(study_id=study.pk, kinds=[Kind.ORIGINAL])
    assert _original_label(study) == label
