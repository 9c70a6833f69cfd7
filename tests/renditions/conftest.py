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
