"""Synthetic CT studies for tests and benchmarks: fictional patient, generated UIDs and pixels.

``write_ct_series(folder, slices=N)`` writes N 512x512 16-bit slices (~0.5 MB each) one at a
time, so memory stays flat whatever N."""

from __future__ import annotations

import os
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

FICTIONAL_PATIENT = "Synthetic^Testpatient"
SLICE_BYTES = 512 * 512 * 2


def ct_slice(*, study_uid: str, series_uid: str, index: int, patient_name: str = FICTIONAL_PATIENT,
             patient_id: str = "SYN-0001", sop_uid: str | None = None, rows: int = 512, columns: int = 512,
             seed: bytes | None = None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = "20260101"
    ds.StudyDescription = "Synthetic CT chest"
    ds.AccessionNumber = "SYN-ACC-1"
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0, 0, float(index)]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    # random-ish pixels (urandom masked to 12 bits): incompressible like real noise
    raw = bytearray(seed if seed is not None else os.urandom(rows * columns * 2))
    raw[1::2] = bytes(b & 0x0F for b in raw[1::2]) if len(raw) <= 4096 else bytes(raw[1::2]).translate(_MASK)
    ds.PixelData = bytes(raw)
    return ds


_MASK = bytes(b & 0x0F for b in range(256))


def write_ct_series(folder: Path, *, slices: int, patient_name: str = FICTIONAL_PATIENT,
                    study_uid: str | None = None, rows: int = 512, columns: int = 512) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    paths = []
    for i in range(slices):
        ds = ct_slice(study_uid=study_uid, series_uid=series_uid, index=i, patient_name=patient_name,
                      rows=rows, columns=columns)
        path = folder / f"IM{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
