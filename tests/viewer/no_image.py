"""Objects the viewer has no image of: an RT plan / structured report (no pixel data, no Rows and
Columns) and a CT whose pixel data is shorter than its header says (not decodable). Stored as
ingest would store them (encrypted blobs, index rows), each in a series of its own."""

from __future__ import annotations

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bench.frames_synthetic import ct_phantom_slice

RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"


def _store(study, ds, *, number: int, modality: str, description: str):
    from apps.imaging.blobs import put_blob
    from apps.imaging.models import Instance, Series

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    blob = put_blob(buffer, organization=study.organization)
    series = Series.objects.create(organization=study.organization, study=study,
                                   series_instance_uid=ds.SeriesInstanceUID, series_number=number,
                                   modality=modality, series_description=description, num_instances=1)
    rows, columns = ds.get("Rows"), ds.get("Columns")
    return Instance.objects.create(
        organization=study.organization, study=study, series=series, blob=blob,
        sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
        transfer_syntax_uid=ExplicitVRLittleEndian, instance_number=1, frames=1, rows=rows, columns=columns,
        size=blob.size, sha256=blob.sha256)


def store_rt_plan(study, *, number: int = 0):
    """An RT plan (no pixel data), series ``number``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_PLAN
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.preamble = meta, b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = RT_PLAN, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_instance_uid, generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "RTPLAN", number, 1
    ds.RTPlanLabel = "PLAN"
    return _store(study, ds, number=number, modality="RTPLAN", description="Plan")


def store_short_ct(study, *, number: int = 2):
    """A CT slice whose Rows say 48 where its pixel data holds 32 (not decodable), series ``number``."""
    ds = ct_phantom_slice(0, rows=32, columns=32, study_uid=study.study_instance_uid, series_uid=generate_uid())
    ds.Rows = 48
    ds.SeriesNumber = number
    return _store(study, ds, number=number, modality="CT", description="Short")
