"""A synthetic CT phantom with known values, for the viewer's tests and the frames benchmark.

Slice ``k`` of ``ct_phantom_slice`` is air (-1000 HU) around a body disk whose soft tissue is
``body_hu(k)`` HU, with a lung ellipse (-800 HU) on the left and a bone bar (+700 HU) at the
bottom, so the centre of every slice shows the slice's own value: a viewer test can tell which
slice and which window is on screen from one pixel. Stored as 16-bit unsigned with intercept
-1024, a WindowCenter/Width of 40/400 in the file. Fictional patient, generated UIDs.
"""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

FICTIONAL_PATIENT = "Phantom^Synthetic"


def body_hu(index: int) -> int:
    """The soft-tissue value at the centre of slice ``index``."""
    return -100 + 15 * index


def phantom_pixels(index: int, rows: int, columns: int, noise_hu: float = 0.0) -> np.ndarray:
    """Hounsfield units of slice ``index`` (int16); ``noise_hu`` adds seeded Gaussian noise of that
    standard deviation (texture like a real scan, for benchmarks)."""
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    cy, cx = (rows - 1) / 2.0, (columns - 1) / 2.0
    hu = np.full((rows, columns), -1000, dtype=np.int16)
    body = ((y - cy) / (0.45 * rows)) ** 2 + ((x - cx) / (0.45 * columns)) ** 2 <= 1.0
    hu[body] = body_hu(index)
    lung = ((y - cy) / (0.2 * rows)) ** 2 + ((x - 0.27 * columns) / (0.09 * columns)) ** 2 <= 1.0
    hu[lung] = -800
    bone = (np.abs(x - cx) < 0.12 * columns) & (np.abs(y - 0.8 * rows) < 0.04 * rows)
    hu[bone] = 700
    if noise_hu:
        noise = np.random.default_rng(index).normal(0.0, noise_hu, size=hu.shape)
        hu = np.clip(hu + noise, -1024, 3000).astype(np.int16)
    return hu


def ct_phantom_slice(index: int, *, rows: int = 128, columns: int = 128, study_uid: str | None = None,
                     series_uid: str | None = None, noise_hu: float = 0.0) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = FICTIONAL_PATIENT
    ds.PatientID = "PHANTOM-1"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.SliceLocation = float(index)
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelSpacing = [0.7, 0.7]
    ds.PixelData = (phantom_pixels(index, rows, columns, noise_hu).astype(np.int32) + 1024).astype("<u2").tobytes()
    return ds


def ct_phantom_bytes(index: int, **kwargs) -> bytes:
    buffer = io.BytesIO()
    ct_phantom_slice(index, **kwargs).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def store_ct_phantom(*, study, slices: int, rows: int = 128, columns: int = 128, noise_hu: float = 0.0):
    """Store ``slices`` phantom slices as one series of ``study`` (encrypted blobs, index rows);
    returns the instances in slice order."""
    from apps.imaging.blobs import put_blob
    from apps.imaging.models import Instance, Series

    series_uid = generate_uid()
    series = Series.objects.create(organization=study.organization, study=study, series_instance_uid=series_uid,
                                   series_number=1, modality="CT", series_description="Phantom axial",
                                   num_instances=slices)
    instances = []
    for index in range(slices):
        ds = ct_phantom_slice(index, rows=rows, columns=columns, study_uid=study.study_instance_uid,
                              series_uid=series_uid, noise_hu=noise_hu)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        buffer.seek(0)
        blob = put_blob(buffer, organization=study.organization)
        instances.append(Instance.objects.create(
            organization=study.organization, study=study, series=series, blob=blob,
            sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=CTImageStorage,
            transfer_syntax_uid=ExplicitVRLittleEndian, instance_number=index + 1, frames=1, rows=rows,
            columns=columns, size=blob.size, sha256=blob.sha256))
    study.num_series = study.series.count()
    study.num_instances = study.instances.count()
    study.save(update_fields=["num_series", "num_instances"])
    return instances
