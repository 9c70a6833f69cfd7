from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apps.imaging.models import Study
from apps.imaging.services import ingest_job_create, ingest_job_run


def ingest_folder(folder: Path, organization, case=None) -> list[Study]:
    """Ingest the DICOM files of ``folder`` (through the real ingest service) into ``organization``."""
    job = ingest_job_create(organization=organization, source_path=str(folder), case=case, enqueue=False)
    job = ingest_job_run(job_id=job.pk)
    return list(job.studies.order_by("pk"))


def copy_files(paths, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        shutil.copy(p, folder / Path(p).name)
    return folder


@pytest.fixture(scope="session")
def small_ct(tmp_path_factory) -> Path:
    """A 6-slice 64x64 synthetic CT series (fictional patient)."""
    from bench.ingest.synthetic import write_ct_series

    folder = tmp_path_factory.mktemp("renditions_ct")
    write_ct_series(folder, slices=6, rows=64, columns=64)
    return folder


@pytest.fixture
def ct_study(org_a, tmp_path, small_ct):
    """A ready 6-slice synthetic CT study in org A (in a case), its renditions made."""
    from apps.renditions.services import study_renditions_make
    from tests.factories import CaseFactory

    case = CaseFactory(organization=org_a)
    [study] = ingest_folder(small_ct, org_a, case=case)
    study_renditions_make(study_id=study.pk)
    study.refresh_from_db()
    return study


def assert_frames_and_copies_refused(client, study, reason: str) -> dict:
    """``study``'s one image is refused with ``reason`` by the viewer (each quality: 200, marked
    undecodable, the reason in its JSON) and by the preview and education copies (unavailable,
    with the reason). Returns the study's rendition files by kind, for what else a test checks."""
    from django.urls import reverse

    from apps.imaging.models import Instance
    from apps.renditions.models import Kind, RenditionFile, Status
    from apps.renditions.services import study_renditions_make

    url = reverse("viewer:frame", kwargs={"instance_id": Instance.objects.get(study=study).public_id})
    for quality in ("diagnostic", "preview", "low"):
        response = client.get(url, {"quality": quality})
        assert response.status_code == 200 and response["X-Lightbox-Frame"] == "undecodable"
        assert response.json()["reason"] == reason
    study_renditions_make(study_id=study.pk)
    made = {f.kind: f for f in RenditionFile.objects.filter(study=study)}
    for kind in (Kind.PREVIEW, Kind.EDUCATION):
        assert (made[kind].status, made[kind].reason) == (Status.UNAVAILABLE, reason)
    return made
