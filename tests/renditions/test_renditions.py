"""Renditions of a study: what each kind holds, how it is labelled and marked, idempotence."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from apps.imaging.blobs import open_blob
from apps.imaging.models import Instance
from apps.renditions import encoders
from apps.renditions.models import Kind, Label, Rendition, RenditionFile, Status
from apps.renditions.services import study_renditions_make

pytestmark = pytest.mark.django_db


def _read(f: RenditionFile) -> bytes:
    with open_blob(f.blob) as fh:
        return fh.read()


def test_every_kind_is_made_summarized_and_labelled(ct_study):
    renditions = {r.kind: r for r in Rendition.objects.filter(study=ct_study)}
    assert set(renditions) == set(Kind)
    assert {k: r.label for k, r in renditions.items()} == {
        Kind.ORIGINAL: Label.DIAGNOSTIC_ORIGINAL, Kind.LOSSLESS: Label.DIAGNOSTIC_LOSSLESS,
        Kind.PREVIEW: Label.PREVIEW_LOSSY, Kind.EDUCATION: Label.EDUCATION_LOW_RES}
    assert all(r.status == Status.READY for r in renditions.values())
    assert renditions[Kind.ORIGINAL].files_ready == renditions[Kind.PREVIEW].files_ready == 6
    assert renditions[Kind.EDUCATION].files_ready == 1  # key images: the middle of each series
    assert renditions[Kind.ORIGINAL].ratio == 1.0
    assert renditions[Kind.LOSSLESS].codec == "JPEG-LS Lossless Image Compression"
    assert renditions[Kind.PREVIEW].lossy and not renditions[Kind.LOSSLESS].lossy
    # these 64 px slices' previews are enlarged to encoders.BAND_MIN_WIDTH so that their band is read
    # whole (test_band_legible.py): larger than the originals; a 512 px slice's is smaller (below)
    assert renditions[Kind.PREVIEW].ratio is not None
    assert all(f.columns == encoders.BAND_MIN_WIDTH
               for f in RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW))


def _slice(rows: int, columns: int) -> bytes:
    from bench.ingest.synthetic import ct_slice

    ds = ct_slice(study_uid="1.2.3", series_uid="1.2.3.4", index=0, rows=rows, columns=columns)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_preview_is_small_lossy_jpeg_with_a_burned_in_band(ct_study):
    f = RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW).first()
    image = Image.open(io.BytesIO(_read(f)))
    assert image.format == "JPEG" and max(image.size) <= encoders.PREVIEW_MAX
    jpeg, _columns, rows = encoders.preview_jpeg(_slice(512, 512))
    assert len(jpeg) < len(_slice(512, 512))
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
    band = pixels[-round(rows * 0.07):, :]
    body = pixels[: rows // 2, :]
    assert (band < 40).mean() > 0.6 and (band > 200).sum() > 100, "a dark band with light text at the bottom"
    assert (body < 40).mean() < 0.6, "the band is at the bottom only"


def test_preview_of_a_large_image_is_at_most_1024_px():
    jpeg, columns, rows = encoders.preview_jpeg(_slice(1100, 1300))
    assert (columns, rows) == Image.open(io.BytesIO(jpeg)).size
    assert max(columns, rows) == 1024


def test_education_export_is_a_marked_lossy_derived_dicom(ct_study):
    f = RenditionFile.objects.get(study=ct_study, kind=Kind.EDUCATION)
    ds = pydicom.dcmread(io.BytesIO(_read(f)))
    source = Instance.objects.get(pk=f.instance_id)
    assert ds.LossyImageCompression == "01"
    assert float(ds.LossyImageCompressionRatio[-1] if ds["LossyImageCompressionRatio"].VM > 1
                 else ds.LossyImageCompressionRatio) > 1
    assert "ISO_10918_1" in str(ds.LossyImageCompressionMethod)
    assert ds.ImageType[0] == "DERIVED"
    assert ds.SOPInstanceUID != source.sop_instance_uid
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.sop_instance_uid
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert max(ds.Rows, ds.Columns) <= encoders.EDUCATION_MAX
    assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
    assert f.label == Label.EDUCATION_LOW_RES and f.lossy


def test_making_twice_adds_nothing(ct_study):
    before = list(RenditionFile.objects.filter(study=ct_study).values_list("pk", "sha256").order_by("pk"))
    study_renditions_make(study_id=ct_study.pk)
    after = list(RenditionFile.objects.filter(study=ct_study).values_list("pk", "sha256").order_by("pk"))
    assert before == after


def test_task_is_acks_late_and_takes_ids(ct_study):
    from apps.renditions.tasks import study_renditions_task

    assert study_renditions_task.acks_late
    study_renditions_task.delay(ct_study.pk)  # eager: runs, idempotent


def test_renditions_are_queued_after_ingest(org_a, small_ct, django_capture_on_commit_callbacks):
    from tests.renditions.conftest import ingest_folder

    with django_capture_on_commit_callbacks(execute=True):
        [study] = ingest_folder(small_ct, org_a)
    assert Rendition.objects.get(study=study, kind=Kind.PREVIEW).files_ready == 6


@pytest.mark.parametrize("ratio, method", [("10", "ISO_10918_1"), (["10", "2.5"], ["ISO_10918_1", "ISO_15444_1"])])
def test_education_export_of_a_lossy_source_carries_its_compression_history_on(ratio, method):
    """A source already lossy-compressed, with one step or several recorded: its ratios and
    methods come first, this export's JPEG last (PS3.3 C.7.6.1.1.5). One value is not a list."""
    from bench.ingest.synthetic import ct_slice

    ds = ct_slice(study_uid="1.2.3", series_uid="1.2.3.4", index=0, rows=64, columns=64)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = ratio
    ds.LossyImageCompressionMethod = method
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)

    data, _columns, _rows = encoders.education_dicom(out.getvalue())

    exported = pydicom.dcmread(io.BytesIO(data))
    before = ratio if isinstance(ratio, list) else [ratio]
    ratios = [str(v) for v in exported.LossyImageCompressionRatio]
    assert ratios[:-1] == before and float(ratios[-1]) > 1
    assert list(exported.LossyImageCompressionMethod) == [*(method if isinstance(method, list) else [method]),
                                                          "ISO_10918_1"]


@pytest.mark.parametrize(("source", "expected"), [("YES", "YES"), ("NO", "NO"), (None, None)])
def test_education_export_never_says_its_pixels_are_free_of_burned_in_text_the_source_may_have(source, expected):
    """The education copy is the source's pixels, scaled: Burned In Annotation (0028,0301) says
    what the source said, and nothing when the source did not say. "NO" on a copy of an image
    with the patient's name burned in would let anything that trusts the flag (a de-identifier
    excludes on it) take it as clean."""
    from bench.ingest.synthetic import ct_slice

    ds = ct_slice(study_uid="1.2.3", series_uid="1.2.3.4", index=0, rows=64, columns=64)
    if source is not None:
        ds.BurnedInAnnotation = source
    elif "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)

    data, _columns, _rows = encoders.education_dicom(out.getvalue())

    assert pydicom.dcmread(io.BytesIO(data)).get("BurnedInAnnotation") == expected


def test_a_shared_blob_deleted_before_the_row_takes_it_is_stored_again(ct_study, monkeypatch):
    """Renditions of the same bytes share a blob (a study's versions). If another study's
    deletion removes the blob put_blob just found, before this rendition's row takes it, the
    bytes are stored again: no row may point at a deleted blob."""
    import hashlib

    from apps.imaging import blobs
    from apps.imaging.models import Blob

    files = RenditionFile.objects.filter(study=ct_study)
    made = {(f.kind, f.instance_id): f.sha256 for f in files if f.blob_id}
    files.delete()  # made again below: put_blob finds their blobs still stored
    real_put = blobs.put_blob
    deleted: list[int] = []

    def put(fileobj, **kwargs):
        blob = real_put(fileobj, **kwargs)
        if not deleted and blob.pk != Instance.objects.filter(study=ct_study).first().blob_id:
            deleted.append(blob.pk)  # the other study's deletion commits here
            blobs.blob_files_delete(blobs.blobs_unreferenced_delete([blob.pk]))
        return blob

    monkeypatch.setattr(blobs, "put_blob", put)
    study_renditions_make(study_id=ct_study.pk)
    assert deleted and not Blob.objects.filter(pk=deleted[0]).exists()
    remade = {(f.kind, f.instance_id): f for f in RenditionFile.objects.filter(study=ct_study).select_related("blob")
              if f.blob_id}
    assert set(remade) == set(made)
    for f in remade.values():
        assert hashlib.sha256(_read(f)).hexdigest() == f.sha256 == f.blob.sha256
