"""Objects the viewer has no image of: an RT plan / structured report (no pixel data, no Rows and
Columns) and a CT whose pixel data is shorter than its header says (not decodable). Stored as
ingest would store them (encrypted blobs, index rows), each in a series of its own or, for
the viewer's stack, together with images in one series."""

from __future__ import annotations

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bench.frames_synthetic import ct_phantom_slice

RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"


def _store(study, ds, *, number: int, modality: str, description: str, series=None):
    """``ds`` stored as a series of its own (``number``), or as the next instance of ``series``."""
    from apps.imaging.blobs import put_blob
    from apps.imaging.models import Instance, Series

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    blob = put_blob(buffer, organization=study.organization)
    if series is None:
        series = Series.objects.create(organization=study.organization, study=study,
                                       series_instance_uid=ds.SeriesInstanceUID, series_number=number,
                                       modality=modality, series_description=description, num_instances=1)
    else:
        series.num_instances = series.instances.count() + 1
        series.save(update_fields=["num_instances"])
    rows, columns = ds.get("Rows"), ds.get("Columns")
    return Instance.objects.create(
        organization=study.organization, study=study, series=series, blob=blob,
        sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
        transfer_syntax_uid=ExplicitVRLittleEndian, instance_number=ds.get("InstanceNumber", 1), frames=1,
        rows=rows, columns=columns, size=blob.size, sha256=blob.sha256)


def _rt_plan(study) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_PLAN
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.preamble = meta, b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = RT_PLAN, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_instance_uid, generate_uid()
    ds.Modality, ds.InstanceNumber = "RTPLAN", 1
    ds.RTPlanLabel = "PLAN"
    return ds


def store_rt_plan(study, *, number: int = 0):
    """An RT plan (no pixel data), series ``number``."""
    ds = _rt_plan(study)
    ds.SeriesNumber = number
    return _store(study, ds, number=number, modality="RTPLAN", description="Plan")


BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def store_report(study, *, number: int = 3):
    """A structured report (no pixel data, no Rows and Columns), series ``number``."""
    ds = _rt_plan(study)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = BASIC_TEXT_SR
    del ds.RTPlanLabel
    ds.Modality, ds.SeriesNumber = "SR", number
    return _store(study, ds, number=number, modality="SR", description="Report")


def _short_ct(study, index: int = 0, series_uid: str | None = None) -> Dataset:
    ds = ct_phantom_slice(index, rows=32, columns=32, study_uid=study.study_instance_uid,
                          series_uid=series_uid or generate_uid())
    ds.Rows = 48
    return ds


def store_short_ct(study, *, number: int = 2):
    """A CT slice whose Rows say 48 where its pixel data holds 32 (not decodable), series ``number``."""
    ds = _short_ct(study)
    ds.SeriesNumber = number
    return _store(study, ds, number=number, modality="CT", description="Short")


def store_mixed_series(study, *, number: int = 0):
    """One series ``number`` of four: a phantom CT slice, an object with no image, a CT slice that
    cannot be decoded (short pixel data) and a phantom CT slice, in that order (instance numbers
    1 to 4). Returns the four instances."""
    uid = generate_uid()
    first = ct_phantom_slice(0, rows=32, columns=32, study_uid=study.study_instance_uid, series_uid=uid)
    first.SeriesNumber = number
    instances = [_store(study, first, number=number, modality="CT", description="Mixed")]
    series = instances[0].series
    plan = _rt_plan(study)
    plan.SeriesInstanceUID, plan.SeriesNumber, plan.InstanceNumber = uid, number, 2
    short = _short_ct(study, 2, series_uid=uid)
    last = ct_phantom_slice(3, rows=32, columns=32, study_uid=study.study_instance_uid, series_uid=uid)
    for ds in (short, last):
        ds.SeriesNumber = number
    instances += [_store(study, ds, number=number, modality="CT", description="Mixed", series=series)
                  for ds in (plan, short, last)]
    return instances
