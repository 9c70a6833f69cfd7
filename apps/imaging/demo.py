"""The imaging part of the demo (called from apps.core.demo.seed): studies on the Northwind
"Chest CT - second opinion" case (and a CT slice on Harbor Valley's case), ingested from
pydicom's bundled test files (public test data, no real patients). Idempotent: files already
stored in the organization are not ingested again."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pydicom.data import get_testdata_file

from apps.cases.models import Case, Patient
from apps.imaging.models import Instance, Study
from apps.imaging.services import ingest_job_create, ingest_job_run
from apps.organizations.models import Organization

DEMO_MRN, DEMO_CASE_TITLE = "DEMO-0001", "Chest CT - second opinion"
#: pydicom's bundled test files: a CT slice, an MR slice, a multi-frame MR, and JPEG 2000 / RLE CTs
DEMO_FILES = ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm"]


def _demo_case(org: Organization) -> Case:
    patient, _ = Patient.objects.get_or_create(organization=org, mrn=DEMO_MRN, defaults={"name": "Alex Demo"})
    case, _ = Case.objects.get_or_create(organization=org, title=DEMO_CASE_TITLE, defaults={"patient": patient})
    return case


def seed_imaging(org: Organization, *, case: Case | None = None, files: list[str] = DEMO_FILES) -> list[Study]:
    """``files`` of pydicom's test data on ``case`` (the chest CT case by default)."""
    case = case or _demo_case(org)
    paths = [p for p in (get_testdata_file(name, download=False) for name in files) if p]
    with tempfile.TemporaryDirectory(prefix="lightbox-demo-") as tmp:
        for path in paths:
            shutil.copy(path, Path(tmp) / Path(path).name)
        if Instance.objects.for_org(org.pk).filter(study__case=case).count() < len(paths):
            job = ingest_job_create(organization=org, source_path=tmp, case=case, enqueue=False)
            ingest_job_run(job_id=job.pk)
    return list(Study.objects.for_org(org.pk).filter(case=case))
