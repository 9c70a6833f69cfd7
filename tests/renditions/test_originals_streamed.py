"""The original rendition's rows (CRC-32, lossy or not, identity removed) are made from each
original read as a stream (``services._original_read``): a download package asked for before the
renditions task made them (``originals_ensure``, in the web request, HEAD too) and the task's
original-only pass never hold an instance whole. They read it whole (``fh.read()``) and parsed
it: a 33 MB instance took 69 MB, and nothing but the upload limit (20 GB) bounds an instance. The
rows are the same: CRC-32 of the file's bytes, a JPEG 2000 file coded irreversibly is lossy, a file
whose identity removal holds is verified, a deflated one is read.

Generated images and pydicom's test files only."""

from __future__ import annotations

import shutil
import tracemalloc
import zlib

import pydicom
import pytest

from apps.renditions import services
from apps.renditions.models import Kind, Label, RenditionFile, Status
from apps.renditions.packages import study_package
from bench.frames_synthetic import store_ct_phantom
from bench.ingest.synthetic import write_ct_series
from tests.dicomfiles import pydicom_file
from tests.factories import CaseFactory, StudyFactory
from tests.renditions.conftest import ingest_folder
from tests.renditions.test_j2k_lossy import _j2k_file

pytestmark = pytest.mark.django_db

MB = 1_000_000
#: what reading one original may hold at once: a few decrypted chunks (1 MB each) and a header
BOUND = 8 * MB


@pytest.fixture
def big_instance(org_a, clinician_a):
    """One 4096 x 4096 CT slice of 16 bits (a 33 MB instance), no rendition made yet."""
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    study = StudyFactory(organization=org_a, case=case, study_description="Big")
    [inst] = store_ct_phantom(study=study, slices=1, rows=4096, columns=4096)
    assert inst.size > 30 * MB
    return inst


def _spy_reads(monkeypatch) -> list[int]:
    """The sizes asked of every read of a blob opened by the renditions' services."""
    asked: list[int] = []
    real = services.open_blob

    def spied(blob):
        fh = real(blob)
        read = fh.read

        def counted(n=-1):
            asked.append(n)
            return read(n)

        fh.read = counted
        return fh

    monkeypatch.setattr(services, "open_blob", spied)
    return asked


def _peak(call):
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _plaintext_crc(inst) -> int:
    from apps.imaging.blobs import open_blob

    crc = 0
    with open_blob(inst.blob) as fh:
        while chunk := fh.read(1024 * 1024):
            crc = zlib.crc32(chunk, crc)
    return crc


def test_a_package_asked_before_the_task_reads_each_original_as_a_stream(big_instance, monkeypatch):
    asked = _spy_reads(monkeypatch)
    package, peak = _peak(lambda: study_package(big_instance.study, Kind.ORIGINAL))
    assert peak < BOUND, f"{peak // MB} MB held to build the package of one {big_instance.size // MB} MB instance"
    assert asked and all(0 <= n <= services.READ_CHUNK for n in asked)  # never read(): the whole file
    row = RenditionFile.objects.get(instance=big_instance, kind=Kind.ORIGINAL)
    assert (row.status, row.crc32, row.sha256, row.bytes) == (
        Status.READY, _plaintext_crc(big_instance), big_instance.sha256, big_instance.size)
    assert (row.source_lossy, row.identity_removed, row.label) == (False, False, Label.DIAGNOSTIC_ORIGINAL)
    assert package.size > big_instance.size


def test_the_tasks_original_only_pass_reads_each_original_as_a_stream(big_instance, monkeypatch):
    asked = _spy_reads(monkeypatch)
    _result, peak = _peak(lambda: services.study_renditions_make(study_id=big_instance.study_id,
                                                                 kinds=[Kind.ORIGINAL]))
    assert peak < BOUND, f"{peak // MB} MB held for one {big_instance.size // MB} MB instance"
    assert asked and all(0 <= n <= services.READ_CHUNK for n in asked)
    assert RenditionFile.objects.get(instance=big_instance, kind=Kind.ORIGINAL).crc32 == _plaintext_crc(big_instance)


def _deidentified_ct(path, work) -> None:
    from apps.deid.profile import deidentify_file

    [source] = write_ct_series(work, slices=1, rows=16, columns=16)
    path.write_bytes(deidentify_file(source.read_bytes(), pseudonym="", key=b"test-key" * 4).data)
    assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"


def test_the_rows_made_from_the_stream_say_what_the_files_are(org_a, tmp_path):
    """CRC-32 of the file's bytes; lossy by the header, or by a JPEG 2000 codestream coded
    irreversibly that the header does not flag; identity removed only where it holds; a deflated
    data set read. The same as the rows the task makes from the whole file, kind by kind."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), folder / "ct.dcm")
    shutil.copy(pydicom_file("image_dfl.dcm"), folder / "deflated.dcm")
    shutil.copy(pydicom_file("JPEG-lossy.dcm"), folder / "jpeg_lossy.dcm")
    _j2k_file(folder / "j2k_irreversible.dcm", lossy_frames=(False, True))
    _j2k_file(folder / "j2k_reversible.dcm", lossy_frames=(False,))
    _deidentified_ct(folder / "deidentified.dcm", tmp_path / "deid_source")
    studies = ingest_folder(folder, org_a)
    instances = {inst.pk: inst for study in studies for inst in study.instances.select_related("blob")}
    assert len(instances) == 6
    for study in studies:
        services.originals_ensure(study=study)
    fields = ("status", "crc32", "sha256", "bytes", "source_lossy", "lossy", "identity_removed", "label", "codec")
    streamed = {row["instance_id"]: row for row in RenditionFile.objects.filter(kind=Kind.ORIGINAL)
                .values("instance_id", *fields)}
    by_sop = {inst.sop_instance_uid: streamed[pk] for pk, inst in instances.items()}
    files = {p.name: pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in folder.iterdir()}
    facts = {name: (by_sop[uid]["source_lossy"], by_sop[uid]["identity_removed"]) for name, uid in files.items()}
    assert facts == {"ct.dcm": (False, False), "deflated.dcm": (False, False), "jpeg_lossy.dcm": (True, False),
                     "j2k_irreversible.dcm": (True, False), "j2k_reversible.dcm": (False, False),
                     "deidentified.dcm": (False, True)}
    for name, uid in files.items():
        assert by_sop[uid]["crc32"] == zlib.crc32((folder / name).read_bytes()), name
        assert by_sop[uid]["status"] == Status.READY
    # the task's rows of the same files, made from the whole file (every kind asked: one read)
    RenditionFile.objects.filter(kind=Kind.ORIGINAL).delete()
    for study in studies:
        services.study_renditions_make(study_id=study.pk)
    whole = {row["instance_id"]: row for row in RenditionFile.objects.filter(kind=Kind.ORIGINAL)
             .values("instance_id", *fields)}
    assert whole == streamed


def test_an_education_image_made_for_a_package_reads_the_original_as_a_stream(ct_study, monkeypatch):
    """``education_images_ensure`` (the education package of a file made before it held images)
    decodes the key frame from the blob as a stream (``pixels.load_frame``): it read the whole
    original first. The image is the same as before."""
    files = RenditionFile.objects.filter(study=ct_study, kind=Kind.EDUCATION, status=Status.READY)
    made = dict(files.values_list("pk", "image_sha256"))
    assert made and all(made.values())
    files.update(image_blob=None, image_sha256="", image_crc32=None, image_bytes=0)
    asked = _spy_reads(monkeypatch)
    services.education_images_ensure(study=ct_study)
    assert dict(files.values_list("pk", "image_sha256")) == made
    assert asked and -1 not in asked
