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
    returns the instances in slice order.

    Stored as the ingest stores a batch (``apps.imaging.services``): the blob files written
    several at a time (``blobs_write_start``: writing and fsync release the GIL), then their rows
    and the index rows inserted at once, in one transaction. One slice at a time (``put_blob``,
    then a row) took most of the viewer tests' study fixture (its 20 files' fsyncs one after
    another)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from django.db import transaction

    from apps.imaging.blobs import (
        PARALLEL_WRITES,
        blob_files_kept_if_committed,
        blobs_record,
        blobs_write_finish,
        blobs_write_start,
    )
    from apps.imaging.models import Instance, Series

    series_uid = generate_uid()
    files = []  # (sha256, SOP Instance UID, bytes) in slice order
    for index in range(slices):
        ds = ct_phantom_slice(index, rows=rows, columns=columns, study_uid=study.study_instance_uid,
                              series_uid=series_uid, noise_hu=noise_hu)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
        files.append((hashlib.sha256(data).hexdigest(), ds.SOPInstanceUID, data))
    with ThreadPoolExecutor(max_workers=PARALLEL_WRITES, thread_name_prefix="phantom-write") as pool:
        written = blobs_write_finish(blobs_write_start({sha: data for sha, _uid, data in files}, pool))
    with blob_files_kept_if_committed(written), transaction.atomic():
        blobs = {blob.sha256: blob for blob in blobs_record(written)}
        series = Series.objects.create(organization=study.organization, study=study,
                                       series_instance_uid=series_uid, series_number=1, modality="CT",
                                       series_description="Phantom axial", num_instances=slices)
        instances = Instance.objects.bulk_create([
            Instance(organization=study.organization, study=study, series=series, blob=blobs[sha],
                     sop_instance_uid=uid, sop_class_uid=CTImageStorage, transfer_syntax_uid=ExplicitVRLittleEndian,
                     instance_number=index + 1, frames=1, rows=rows, columns=columns, size=blobs[sha].size,
                     sha256=sha)
            for index, (sha, uid, _data) in enumerate(files)])
        study.num_series = study.series.count()
        study.num_instances = study.instances.count()
        study.save(update_fields=["num_series", "num_instances"])
    return instances
