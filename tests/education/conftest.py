from __future__ import annotations

from pathlib import Path

import pytest

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import CaseFactory, PatientFactory, member
from tests.patient_links import link_patient_account

#: the patient ID the synthetic series carries (``bench.ingest.synthetic.ct_slice``): the
#: education case's patient has it as MRN, as a patient is given only images of their own MRN
#: (``apps.sharing.policy.held_back_from_patient``)
SYNTHETIC_PATIENT_ID = "SYN-0001"


@pytest.fixture(scope="session")
def tiny_ct(tmp_path_factory) -> Path:
    """A 3-slice 64x64 synthetic CT series (fictional patient)."""
    from bench.ingest.synthetic import write_ct_series

    folder = tmp_path_factory.mktemp("education_ct")
    write_ct_series(folder, slices=3, rows=64, columns=64)
    return folder


@pytest.fixture
def sharer(org_a):
    return member(org_a, Role.CLINICIAN, email="sharer@alpha.example", full_name="Casey Sharer")


@pytest.fixture
def patient(org_a, edu_case):
    """The education case's patient's portal account, linked to them as their accepted invitation
    links it (a patient-education share gives no other account anything)."""
    user = member(org_a, Role.PATIENT, email="pat@alpha.example", full_name="Pat Patient")
    link_patient_account(user, edu_case.patient, case=edu_case)
    return user


@pytest.fixture
def edu_case(org_a, sharer):
    return CaseFactory(organization=org_a, created_by=sharer, responsible_clinician=sharer,
                       patient=PatientFactory(organization=org_a, mrn=SYNTHETIC_PATIENT_ID))


@pytest.fixture
def edu_study(org_a, edu_case, tiny_ct):
    """A ready study in the case, its renditions (education among them) made."""
    from apps.imaging.models import Study
    from apps.imaging.services import ingest_job_create, ingest_job_run
    from apps.renditions.services import study_renditions_make

    job = ingest_job_create(organization=org_a, source_path=str(tiny_ct), case=edu_case, enqueue=False)
    ingest_job_run(job_id=job.pk)
    study = Study.objects.get(case=edu_case)
    Study.objects.filter(pk=study.pk).update(study_description="CT chest (education test)")
    study_renditions_make(study_id=study.pk)
    study.refresh_from_db()
    return study


@pytest.fixture
def edu_share(edu_case, sharer, patient):
    """A patient-education share of the case to the patient: (grant, link, raw token)."""
    return services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                                 recipient_kind=RecipientKind.USER, grantee=patient, download_limit=2)
