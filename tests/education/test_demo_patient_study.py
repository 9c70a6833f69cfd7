"""The demo still shows its patient an education copy: a patient is given only studies whose
images carry their case's MRN as patient ID (``policy.held_back_from_patient``), and pydicom's test
files carry others (1CT1, 4MR1, 8NM1) or none. The demo makes one study of the demo patient's own
(pydicom's CT slice with the MRN DEMO-0001); the chest CT case holds no other patient's images (found
by QA: it held pydicom's files as they are, flagged): the case page's patient-ID warning is shown on
the one demo case that says it shows it (``ID_CHECK_CASE``). Seeding again makes it once."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.cases.models import Case
from apps.cases.selectors import OTHER_PATIENT, patient_id_flags
from apps.core.demo import seed
from apps.education.selectors import education_shares_for
from apps.imaging.demo import DEMO_CASE_TITLE
from apps.imaging.models import Study

pytestmark = pytest.mark.django_db

OWN_STUDY_DESCRIPTION = "Chest CT (demo patient)"  # apps.imaging.demo


def test_the_demo_patient_is_shown_their_own_study_and_staff_the_flagged_others():
    seed()
    case = Case.objects.get(organization__slug="northwind", title=DEMO_CASE_TITLE)
    studies = list(Study.objects.filter(case=case).latest_versions().order_by("pk"))
    flags = dict(zip((s.study_description for s in studies),
                     patient_id_flags(case=case, patient_ids=[s.patient_id for s in studies]), strict=True))
    assert flags[OWN_STUDY_DESCRIPTION] is None
    assert set(flags.values()) == {None}  # no other patient's images on the demo patient's case
    # the staff flags' demo: on the case that says so
    from apps.cases.demo import ID_CHECK_CASE

    check = Case.objects.get(organization__slug="northwind", title=ID_CHECK_CASE["title"])
    assert patient_id_flags(case=check, patient_ids=check.studies.values_list("patient_id", flat=True)) == [
        OTHER_PATIENT]
    patient = User.objects.get(email="patient@northwind.example")
    [share] = [s for s in education_shares_for(user=patient) if s.grant.case_id == case.pk]
    assert [item.study.study_description for item in share.studies] == [OWN_STUDY_DESCRIPTION]
    count = Study.objects.count()
    seed()
    assert Study.objects.count() == count
