"""A CT or MR whose native pixel data is shorter than its header (Rows x Columns x samples x
frames x Bits Allocated / 8) says: no decoder can show it, so ingest keeps the file (nothing is
lost) and says so: ``DicomHeader.warnings`` holds ``pixel_data_short``, the file's report line
says why and the study is ready with warnings. Longer data (the pad byte of an odd length),
1-bit data packed 8 pixels a byte, float pixel data of the right length and compressed data are
not flagged, nor is any of pydicom's own test files."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pydicom.data
import pytest
from django.utils import translation
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from apps.core.i18n import translate
from apps.imaging import dicom, follow
from apps.imaging.models import FileOutcome, IngestFileResult, JobState, StudyState
from bench.frames_synthetic import ct_phantom_slice
from tests.factories import CaseFactory


def _bytes(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _slice(**changes):
    ds = ct_phantom_slice(0, rows=32, columns=32)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def _parse(ds) -> dicom.DicomHeader:
    return dicom.parse(io.BytesIO(_bytes(ds)))


def test_ct_whose_rows_and_columns_ask_for_more_than_its_pixel_data_is_flagged():
    ds = _slice()
    ds.Rows = 40  # 40 x 32 x 2 bytes asked for, 32 x 32 x 2 held
    assert _parse(ds).warnings == (dicom.PIXEL_DATA_SHORT,)


def test_mr_in_implicit_vr_missing_a_frame_is_flagged():
    ds = _slice(Modality="MR", NumberOfFrames=2)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert _parse(ds).warnings == (dicom.PIXEL_DATA_SHORT,)
    ds.PixelData = ds.PixelData * 2
    assert _parse(ds).warnings == ()


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "RGB", "YBR_FULL_422"])
def test_whole_pixel_data_is_not_flagged(photometric):
    ds = _slice(PhotometricInterpretation=photometric)
    if photometric != "MONOCHROME2":
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        # YBR_FULL_422 native: two samples a pixel (PS3.5 8.2.1)
        ds.PixelData = bytes(32 * 32 * (2 if photometric == "YBR_FULL_422" else 3))
    assert _parse(ds).warnings == ()
    ds.PixelData = ds.PixelData[:-2]
    assert _parse(ds).warnings == (dicom.PIXEL_DATA_SHORT,)


def test_one_bit_data_is_counted_packed_and_the_pad_byte_allowed():
    ds = _slice(Rows=5, Columns=5, BitsAllocated=1, BitsStored=1, HighBit=0)
    ds.PixelData = bytes(4)  # 25 bits: 4 bytes, the last partly used (even: no pad)
    assert _parse(ds).warnings == ()
    ds.Rows = 7  # 35 bits: 5 bytes, written as 6 (the pad byte)
    ds.PixelData = bytes(6)
    assert _parse(ds).warnings == ()
    ds.Rows = 9  # 45 bits: 6 bytes
    ds.PixelData = bytes(4)
    assert _parse(ds).warnings == (dicom.PIXEL_DATA_SHORT,)


@pytest.mark.parametrize(("keyword", "dtype"), [("FloatPixelData", "<f4"), ("DoubleFloatPixelData", "<f8")])
def test_float_pixel_data_is_counted_by_its_own_size(keyword, dtype):
    ds = _slice(Modality="MR")
    del ds.PixelData
    ds.BitsAllocated = 32 if dtype == "<f4" else 64
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    setattr(ds, keyword, np.zeros(32 * 32, dtype=dtype).tobytes())
    assert _parse(ds).warnings == ()
    setattr(ds, keyword, np.zeros(32 * 31, dtype=dtype).tobytes())
    assert _parse(ds).warnings == (dicom.PIXEL_DATA_SHORT,)


def test_compressed_pixel_data_is_not_measured_against_the_header():
    ds = _slice()
    ds.compress(RLELossless)
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    assert _parse(ds).warnings == ()


def test_the_warning_survives_a_prepared_entry():
    header = _parse(_slice(Rows=40))
    assert follow.header_from_json(follow.header_to_json(header)) == header
    older = follow.header_to_json(header)
    del older["warnings"]
    assert follow.header_from_json(older).warnings == ()


def test_none_of_pydicoms_test_files_is_flagged():
    root = pathlib.Path(pydicom.data.__file__).parent
    accepted, flagged = 0, []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            header = dicom.parse(io.BytesIO(path.read_bytes()))
        except dicom.DicomError:
            continue
        accepted += 1
        if header.warnings:
            flagged.append(path.name)
    assert accepted > 100
    assert flagged == []


def test_the_warning_reason_is_plain_and_translated():
    reason = dicom.warning_reason([dicom.PIXEL_DATA_SHORT])
    assert reason == "kept, but its image data is shorter than its header says: the image cannot be shown"
    assert dicom.warning_reason(()) == ""
    with translation.override("es"):
        assert translate(reason)  # a msgid (its Spanish is added to locale/ with the others)


@pytest.mark.django_db
def test_ingest_keeps_the_file_and_the_study_is_ready_with_warnings(org_a, clinician_a, client_as, tmp_path):
    """A file whose image data is shorter than its header says is kept, its line says so, the
    study is ready with warnings and the job done with warnings."""
    from apps.imaging.services import ingest_job_create, ingest_job_run

    whole = _slice()
    short = ct_phantom_slice(1, rows=32, columns=32, study_uid=whole.StudyInstanceUID,
                             series_uid=whole.SeriesInstanceUID)
    short.Rows = 48
    (tmp_path / "whole.dcm").write_bytes(_bytes(whole))
    (tmp_path / "short.dcm").write_bytes(_bytes(short))
    assert whole.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path), case=case,
                            enqueue=False)
    ingest_job_run(job_id=job.pk)
    study = job.studies.get()
    assert study.num_instances == 2  # kept: nothing lost
    assert study.state == StudyState.READY_WITH_WARNINGS
    assert study.warnings == [{"kind": dicom.PIXEL_DATA_SHORT, "sop_instance_uid": short.SOPInstanceUID}]
    lines = {line.path: line for line in IngestFileResult.objects.filter(job=job)}
    assert lines["short.dcm"].outcome == FileOutcome.INGESTED
    assert "shorter than its header says" in lines["short.dcm"].reason
    assert lines["whole.dcm"].reason == ""
    job.refresh_from_db()
    assert job.state == JobState.DONE_WITH_WARNINGS
    page = client_as(clinician_a).get(study.get_absolute_url()).content.decode()
    assert "its image data is shorter than its header says, so it cannot be shown" in page


@pytest.mark.django_db
def test_a_replaced_file_takes_its_warning_with_it(org_a, clinician_a, tmp_path):
    """The short file sent again whole (same SOPInstanceUID, changed bytes) makes version 2:
    it keeps the change's record, not the replaced file's warning."""
    from apps.imaging.services import ingest_job_create, ingest_job_run

    whole = _slice()
    short = ct_phantom_slice(1, rows=32, columns=32, study_uid=whole.StudyInstanceUID,
                             series_uid=whole.SeriesInstanceUID)
    fixed = _bytes(short)
    short.Rows = 48
    for name, data in (("first", _bytes(short)), ("again", fixed)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.dcm").write_bytes(data)
        ingest_job_run(job_id=ingest_job_create(organization=org_a, source_path=str(tmp_path / name),
                                                enqueue=False).pk)
    from apps.imaging.models import Study

    v1, v2 = Study.objects.order_by("version")
    assert [w["kind"] for w in v1.warnings] == [dicom.PIXEL_DATA_SHORT]
    assert [w["kind"] for w in v2.warnings] == ["changed_instance"]
