"""Deleting a study removes its rendition blobs from storage, but not a blob another study still
uses (blobs are content-addressed and shared: dedup)."""

from __future__ import annotations

from django.core.files.storage import default_storage

from apps.imaging.models import Blob
from apps.imaging.services import study_delete
from apps.renditions.models import Kind, RenditionFile, Status
from tests.factories import InstanceFactory, RenditionFactory, RenditionFileFactory, StudyFactory


def test_study_delete_removes_its_blobs_and_keeps_shared_ones(ct_study, admin_a):
    files = RenditionFile.objects.filter(study=ct_study, status=Status.READY).select_related("blob", "image_blob")
    made = {f.kind for f in files if f.kind != Kind.ORIGINAL}
    assert {Kind.LOSSLESS, Kind.PREVIEW, Kind.EDUCATION} <= made
    originals = {i.blob for i in ct_study.instances.select_related("blob")}
    renditions = {f.blob for f in files if f.kind != Kind.ORIGINAL}
    renditions |= {f.image_blob for f in files if f.image_blob_id}  # the education file's picture
    assert renditions and not renditions & originals
    # another study holds the same bytes as one original and one preview (dedup: the same blob)
    shared_original = sorted(originals, key=lambda b: b.pk)[0]
    shared_preview = next(f.blob for f in files if f.kind == Kind.PREVIEW)
    other = StudyFactory(organization=ct_study.organization, case=ct_study.case)
    inst = InstanceFactory(organization=ct_study.organization, series__study=other, blob=shared_original,
                           size=shared_original.size, sha256=shared_original.sha256)
    preview = RenditionFactory(organization=ct_study.organization, study=other, kind=Kind.PREVIEW)
    RenditionFileFactory(organization=ct_study.organization, instance=inst, rendition=preview, kind=Kind.PREVIEW,
                         label="preview_lossy", blob=shared_preview, extension="jpg")
    kept = {shared_original, shared_preview}
    gone = (originals | renditions) - kept
    assert all(default_storage.exists(b.storage_name) for b in originals | renditions)

    removed = study_delete(study=ct_study, by=admin_a)

    assert removed == len(gone)
    assert not [b.storage_name for b in gone if default_storage.exists(b.storage_name)]
    assert not Blob.objects.filter(pk__in=[b.pk for b in gone]).exists()
    for blob in kept:
        assert Blob.objects.filter(pk=blob.pk).exists() and default_storage.exists(blob.storage_name)


def test_a_studys_rendition_blobs_are_read_in_one_query(ct_study, django_assert_num_queries):
    from apps.renditions.services import study_rendition_blob_ids

    files = RenditionFile.objects.filter(study=ct_study)
    expected = {f.blob_id for f in files if f.blob_id} | {f.image_blob_id for f in files if f.image_blob_id}
    assert {f.image_blob_id for f in files if f.image_blob_id} - {f.blob_id for f in files}  # both kinds held
    with django_assert_num_queries(1):
        assert study_rendition_blob_ids(study=ct_study) == expected
