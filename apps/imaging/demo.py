"""The imaging part of the demo (called from apps.core.demo.seed): the demo patient's own chest CT
on the Northwind "Chest CT - second opinion" case (its only study: a CT), a small brain MR study on
the "Brain MR - tumor board review" case, a CT slice on Harbor Valley's case, pydicom's NM bone scan
on the case that shows the patient-ID warning on purpose (``apps.cases.demo.ID_CHECK_CASE``), and
one head CT uploaded by the demo clinician with "No case (attach later)", to attach to a case from
its page. All ingested through the ingest service from pydicom's bundled test files (public test
data, fictional patients). The copy ingested onto a case is given that case's patient's MRN as its
patient ID and their name (``_for_patient``; pydicom's own files are never changed), so that no
demo case but the deliberate one warns that its images are another patient's (found by QA: every
case did). Idempotent: a file whose bytes are stored in the organization already is not ingested
again, wherever its study is now (a demo user may have attached the unattached one since)."""

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
#: the chest CT case's studies: CT only (found by QA: pydicom's MR slices and NM bone scan, and
#: its CT slice under another patient's ID, were on it). Its one study is the demo patient's own
#: (``OWN_STUDY_SOURCE``), made from pydicom's CT slice.
DEMO_FILES: list[str] = []
#: pydicom's NM "Whole Body Bone" (JPEG 2000, lossy: it shows a study with no lossless copy), left
#: with its patient ID 8NM1 on the case that shows the patient-ID warning on purpose
ID_CHECK_FILES = ["JPEG2000.dcm"]
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
#: show the demo patient nothing.
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


def _for_patient(paths: list[str], folder: Path, patient: Patient) -> list[str]:
    """Copies of ``paths`` in ``folder`` whose patient ID is ``patient``'s MRN and whose patient
    name is theirs (DICOM's "Family^Given"): what the case page compares with the case's MRN
    (``apps.cases.selectors.patient_id_flags``). The same bytes on every demo, so ingested once;
    pydicom's files are read, never written."""
    import pydicom

    given, _, family = patient.name.rpartition(" ")
    made = []
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = patient.mrn, f"{family}^{given}" if given else family
        copy = folder / Path(path).name
        ds.save_as(copy, enforce_file_format=True)
        made.append(str(copy))
    return made


def _ingest(org: Organization, files: list[str], *, case: Case | None, created_by: User | None = None,
            extra: tuple[str, ...] = (), as_patient: bool = True) -> None:
    """Ingest those of ``files`` (pydicom test data) and of ``extra`` (paths of files made for the
    demo) the organization does not hold yet, into ``case`` (None: no case, as an upload with
    "No case (attach later)"), as an upload does. On a case, ``files`` are ingested as copies
    with its patient's MRN and name (``_for_patient``) unless ``as_patient`` is False (the one
    case that shows the patient-ID warning on purpose)."""
    paths = [p for p in (get_testdata_file(name, download=False) for name in files) if p]
    with tempfile.TemporaryDirectory(prefix="lightbox-demo-patient-") as tmp:
        if case is not None and as_patient and paths:
            paths = _for_patient(paths, Path(tmp), case.patient)
        _ingest_paths(org, paths + list(extra), case=case, created_by=created_by)


def _ingest_paths(org: Organization, paths: list[str], *, case: Case | None, created_by: User | None) -> None:
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


def seed_imaging(org: Organization, *, case: Case | None = None, files: list[str] = DEMO_FILES,
                 as_patient: bool = True) -> list[Study]:
    """``files`` of pydicom's test data on ``case`` (the chest CT case by default, with the demo
    patient's own study), as copies carrying its patient's MRN unless ``as_patient`` is False."""
    own = case is None and files == DEMO_FILES  # the chest CT case: the demo patient's own study too
    case = case or _demo_case(org)
    with tempfile.TemporaryDirectory(prefix="lightbox-demo-own-") as tmp:
        made = _own_study_file(Path(tmp)) if own else None
        _ingest(org, files, case=case, extra=(made,) if made else (), as_patient=as_patient)
    return list(Study.objects.for_org(org.pk).filter(case=case))


def seed_brain_mr(org: Organization) -> list[Study]:
    """The brain MR study (``BRAIN_MR_FILES``) on Northwind's second case, the one shared with the
    demo consultant for telehealth triage (previews only): the share then has images to show."""
    from apps.cases.demo import CASES

    case = Case.objects.filter(organization=org, title=CASES[1]["title"]).first()
    if case is None:
        return []
    return seed_imaging(org, case=case, files=BRAIN_MR_FILES)


def seed_id_check_study(org: Organization) -> list[Study]:
    """pydicom's NM bone scan (``ID_CHECK_FILES``), with the patient ID it has (8NM1), on the case
    that says it shows the patient-ID warning on purpose (``apps.cases.demo.ID_CHECK_CASE``)."""
    from apps.cases.demo import ID_CHECK_CASE

    case = Case.objects.filter(organization=org, title=ID_CHECK_CASE["title"]).first()
    if case is None:
        return []
    return seed_imaging(org, case=case, files=ID_CHECK_FILES, as_patient=False)


def seed_unattached_study(org: Organization, domain: str) -> None:
    """A study the demo clinician uploaded with "No case (attach later)" (``UNATTACHED_FILES``),
    so that attaching a study to a case from its page can be shown."""
    clinician = User.objects.filter(email=f"clinician@{domain}").first()
    if clinician is not None:
        _ingest(org, UNATTACHED_FILES, case=None, created_by=clinician)
