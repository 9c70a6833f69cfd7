from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from django.test import Client

from apps.organizations.models import Role
from bench.ingest.synthetic import write_ct_series
from tests.factories import member


@pytest.fixture(scope="session")
def small_ct(tmp_path_factory) -> Path:
    """A 6-slice 64x64 synthetic CT series (fictional patient)."""
    folder = tmp_path_factory.mktemp("small_ct")
    write_ct_series(folder, slices=6, rows=64, columns=64)
    return folder


@pytest.fixture(scope="session")
def small_ct_zip(small_ct, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zips") / "study.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(small_ct.iterdir()):
            zf.write(f, f"CT/{f.name}")
    return path


@pytest.fixture
def ingested(org_a, small_ct):
    """The small CT series ingested into a case of org A: its ready study."""
    from apps.imaging.services import ingest_job_create, ingest_job_run
    from tests.factories import CaseFactory

    case = CaseFactory(organization=org_a)
    job = ingest_job_create(organization=org_a, source_path=str(small_ct), case=case, enqueue=False)
    ingest_job_run(job_id=job.pk)
    return job.studies.get()


@pytest.fixture
def radiologist_client(org_a) -> Client:
    """A radiologist of org_a, signed in: the tests that upload through tus and read the job."""
    c = Client()
    c.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    return c


@pytest.fixture
def headers(org_a):
    """A signed-in uploader's raw ASGI request headers, for tus requests sent straight to the
    application (tests/imaging/test_tus_stream.py, test_tus_concurrent.py)."""
    client = Client()
    client.force_login(member(org_a, Role.RADIOLOGIST, email="rad@alpha.example"))
    name, session = next((k, m.value) for k, m in client.cookies.items())
    return [(b"host", b"testserver"), (b"tus-resumable", b"1.0.0"), (b"x-csrftoken", b"t" * 32),
            (b"cookie", f"{name}={session}; csrftoken={'t' * 32}".encode())]
