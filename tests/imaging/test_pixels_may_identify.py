"""Instance.pixels_may_identify: whether an image's pixels may identify its patient (text burned
in, said or likely; the de-identification's own screening, ``apps.deid.profile.pixels_may_identify``),
set at ingest from the header and filled for the instances stored before it by migration imaging
0009 from their stored files (an unreadable one is flagged). The sharing policy withholds such
images from anonymous links without a second factor (tests/viewer/test_identifying_pixels.py,
tests/renditions/test_identifying_pixels_zip.py)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from pydicom import dcmread
from pydicom.uid import generate_uid

from apps.imaging.models import Instance
from apps.imaging.services import ingest_job_create, ingest_job_run
from bench.ingest.synthetic import write_ct_series
from tests.factories import CaseFactory, InstanceFactory, SeriesFactory, StudyFactory

pytestmark = pytest.mark.django_db

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _write_study(folder):
    """A 4-slice CT: slice 0 as written, slice 1 says Burned In Annotation = YES, slice 2 is a
    secondary capture (its SOP class), slice 3 an ultrasound image that says Burned In Annotation = NO."""
    paths = write_ct_series(folder, slices=4, rows=32, columns=32)
    edits = {
        1: lambda ds: setattr(ds, "BurnedInAnnotation", "YES"),
        2: lambda ds: (setattr(ds, "SOPClassUID", SECONDARY_CAPTURE),
                       setattr(ds.file_meta, "MediaStorageSOPClassUID", SECONDARY_CAPTURE)),
        3: lambda ds: (setattr(ds, "Modality", "US"), setattr(ds, "BurnedInAnnotation", "NO")),
    }
    uids = []
    for index, path in enumerate(paths):
        ds = dcmread(path)
        if index in edits:
            edits[index](ds)
            if index == 3:
                ds.SeriesInstanceUID = generate_uid()
            ds.save_as(path, enforce_file_format=True)
        uids.append(str(ds.SOPInstanceUID))
    return uids


def _flags(study) -> dict[str, bool]:
    return dict(Instance.objects.filter(study=study).values_list("sop_instance_uid", "pixels_may_identify"))


def test_ingest_flags_burned_in_and_secondary_capture_not_a_plain_ct(org_a, tmp_path):
    plain, burned_in, capture, said_free = _write_study(tmp_path / "study")
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path / "study"),
                            case=CaseFactory(organization=org_a), enqueue=False)
    study = ingest_job_run(job_id=job.pk).studies.get()
    assert _flags(study) == {plain: False, burned_in: True, capture: True, said_free: False}
    # indexed: the policy and the packages filter on it
    assert Instance._meta.get_field("pixels_may_identify").db_index


def test_a_new_version_keeps_the_flags_of_the_instances_it_copies(org_a, tmp_path):
    plain, burned_in, capture, said_free = _write_study(tmp_path / "study")
    case = CaseFactory(organization=org_a)
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path / "study"), case=case, enqueue=False)
    first = ingest_job_run(job_id=job.pk).studies.get()
    # the plain slice sent again, changed: a new version, copying the others' rows
    path = tmp_path / "study" / "IM00000.dcm"
    ds = dcmread(path)
    ds.SeriesDescription = "changed"
    (tmp_path / "again").mkdir()
    ds.save_as(tmp_path / "again" / "IM00000.dcm", enforce_file_format=True)
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path / "again"), case=case, enqueue=False)
    second = ingest_job_run(job_id=job.pk).studies.exclude(pk=first.pk).get()
    assert second.version == 2
    assert _flags(second) == {plain: False, burned_in: True, capture: True, said_free: False}


def _fill():
    migration = importlib.import_module("apps.imaging.migrations.0009_instance_pixels_may_identify")
    migration.fill_pixels_may_identify(django_apps, None)


def test_the_migration_fills_the_flag_from_the_stored_files(org_a, tmp_path):
    plain, burned_in, capture, said_free = _write_study(tmp_path / "study")
    job = ingest_job_create(organization=org_a, source_path=str(tmp_path / "study"),
                            case=CaseFactory(organization=org_a), enqueue=False)
    study = ingest_job_run(job_id=job.pk).studies.get()
    # stored before the flag was: every row says False
    Instance.objects.update(pixels_may_identify=False)
    # a stored file that cannot be read as DICOM (the factory's few bytes): not taken as safe
    unreadable = InstanceFactory(organization=org_a, series=SeriesFactory(
        organization=org_a, study=StudyFactory(organization=org_a)))
    _fill()
    assert _flags(study) == {plain: False, burned_in: True, capture: True, said_free: False}
    unreadable.refresh_from_db()
    assert unreadable.pixels_may_identify is True
