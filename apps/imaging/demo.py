"""The imaging part of the demo (called from apps.core.demo.seed): studies on the Northwind
"Chest CT - second opinion" case (one of them the demo patient's own by its patient ID, the
others as pydicom has them, for the case page's patient-ID flags) and a CT slice on Harbor
Valley's case, a small brain MR study on the "Brain MR - tumor board review" case, and one head CT
uploaded by the demo clinician with "No case (attach later)", to attach to a case from its page.
All ingested through the ingest service from pydicom's bundled test files (public test data,
fictional patients). Idempotent: a file whose bytes are stored in the organization already is not
ingested again, wherever its study is now (a demo user may have attached the unattached one
since)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from pydicom.data import get_testdata_file

from apps.accounts.models import User
from apps.cases.models import Case, Patient, mrn_key
from apps.imaging.models import Instance, Study
from apps.imaging.services import ingest_job_create, ingest_job_run
from apps.organizations.models import Organization

DEMO_MRN, DEMO_CASE_TITLE = "DEMO-0001", "Chest CT - second opinion"
#: pydicom's bundled test files: a CT slice, an MR slice, a multi-frame MR and a JPEG 2000 image.
#: (Not MR_small_RLE.dcm: it is MR_small.dcm re-encoded under the same SOPInstanceUID, so it
#: would make a second version of that study, with a warning, on every demo.)
DEMO_FILES = ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "JPEG2000.dcm"]
#: a small real MR study of pydicom's DICOMDIR test set (description "Brain", two series: a
#: localizer and a three-slice pilot) for the brain MR case; its study is in no other demo file
BRAIN_MR_FILES = ["dicomdirtests/98892003/MR1/4919", "dicomdirtests/98892003/MR2/4950",
                  "dicomdirtests/98892003/MR2/4981", "dicomdirtests/98892003/MR2/5011"]
#: the study uploaded with no case: a head CT slice of pydicom-data, in no other demo study
UNATTACHED_FILES = ["693_UNCR.dcm"]
#: the folder the demo's files are ingested from, inside a temporary one: "Your recent uploads"
#: names a job by its folder's last part (``IngestJob.source_name``), not "lightbox-demo-x1y2z3"
DEMO_SOURCE_NAME = "Demo data"
#: the demo patient's own study on the chest CT case: pydicom's CT slice with the demo patient's
#: MRN as its patient ID, the fictional name, a description and UIDs of its own (made from fixed
#: seeds, so it is the same file on every demo and ingested once). A patient is never given images
#: whose patient ID is not their case's MRN (``apps.sharing.policy.held_back_from_patient``), and
#: pydicom's files carry others (1CT1, 4MR1, 8NM1) or none: without it the patient portal would
#: show the demo patient nothing, while those stay for the case page's patient-ID flags.
OWN_STUDY_SOURCE, OWN_STUDY_FILE = "CT_small.dcm", "demo_patient_chest_ct.dcm"
OWN_STUDY_DESCRIPTION = "Chest CT (demo patient)"


def _demo_case(org: Organization) -> Case:
    patient, _ = Patient.objects.get_or_create(organization=org, mrn_key=mrn_key(DEMO_MRN),
                                               defaults={"mrn": DEMO_MRN, "name": "Alex Demo"})
    case, _ = Case.objects.get_or_create(organization=org, title=DEMO_CASE_TITLE, defaults={"patient": patient})
    return case


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _own_study_file(folder: Path) -> str | None:
    """``OWN_STUDY_FILE`` written in ``folder`` (see ``OWN_STUDY_SOURCE``); None without pydicom's file."""
    import pydicom
    from pydicom.uid import generate_uid

    source = get_testdata_file(OWN_STUDY_SOURCE, download=False)
    if not source:
        return None
    ds = pydicom.dcmread(source)
    ds.PatientID, ds.PatientName = DEMO_MRN, "Demo^Alex"
    ds.StudyDescription = OWN_STUDY_DESCRIPTION
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["lightbox-demo", "own-study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["lightbox-demo", "own-series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["lightbox-demo", "own-instance"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = folder / OWN_STUDY_FILE
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def _ingest(org: Organization, files: list[str], *, case: Case | None, created_by: User | None = None,
            extra: tuple[str, ...] = ()) -> None:
    """Ingest those of ``files`` (pydicom test data) and of ``extra`` (paths of files made for the
    demo) the organization does not hold yet, into ``case`` (None: no case, as an upload with
    "No case (attach later)"), as an upload does."""
    paths = [p for p in (get_testdata_file(name, download=False) for name in files) if p] + list(extra)
    digests = {path: _sha256(path) for path in paths}
    held = set(Instance.objects.for_org(org.pk).filter(sha256__in=digests.values()).values_list("sha256", flat=True))
    missing = [path for path in paths if digests[path] not in held]
    if not missing:
        return
    with tempfile.TemporaryDirectory(prefix="lightbox-demo-") as tmp:
        source = Path(tmp) / DEMO_SOURCE_NAME
        source.mkdir()
        for path in missing:
            shutil.copy(path, source / Path(path).name)
        job = ingest_job_create(organization=org, source_path=str(source), case=case, created_by=created_by,
                                enqueue=False)
        ingest_job_run(job_id=job.pk)


def seed_imaging(org: Organization, *, case: Case | None = None, files: list[str] = DEMO_FILES) -> list[Study]:
    """``files`` of pydicom's test data on ``case`` (the chest CT case by default)."""
    own = case is None and files == DEMO_FILES  # the chest CT case: the demo patient's own study too
    case = case or _demo_case(org)
    with tempfile.TemporaryDirectory(prefix="lightbox-demo-own-") as tmp:
        made = _own_study_file(Path(tmp)) if own else None
        _ingest(org, files, case=case, extra=(made,) if made else ())
    return list(Study.objects.for_org(org.pk).filter(case=case))


def seed_brain_mr(org: Organization) -> list[Study]:
    """The brain MR study (``BRAIN_MR_FILES``) on Northwind's second case, the one shared with the
    demo consultant for telehealth triage (previews only): the share then has images to show."""
    from apps.cases.demo import CASES

    case = Case.objects.filter(organization=org, title=CASES[1]["title"]).first()
    if case is None:
        return []
    return seed_imaging(org, case=case, files=BRAIN_MR_FILES)


def seed_unattached_study(org: Organization, domain: str) -> None:
    """A study the demo clinician uploaded with "No case (attach later)" (``UNATTACHED_FILES``),
    so that attaching a study to a case from its page can be shown."""
    clinician = User.objects.filter(email=f"clinician@{domain}").first()
    if clinician is not None:
        _ingest(org, UNATTACHED_FILES, case=None, created_by=clinician)
