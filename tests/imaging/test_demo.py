from __future__ import annotations

import pytest

from apps.core.demo import seed
from apps.imaging.models import Blob, Instance, Study

pytestmark = pytest.mark.django_db


def test_seed_demo_ingests_only_ct_studies_on_the_chest_ct_case_idempotently():
    """Found by QA: the chest CT second opinion also held an NM bone scan, MR studies and pydicom's
    CT slice of another patient ("e+1"). It holds CT studies only, each its patient's."""
    seed()
    studies = Study.objects.filter(case__title="Chest CT - second opinion", organization__slug="northwind")
    assert studies.exists()
    assert all(s.is_ready for s in studies)
    assert [s.modality_list for s in studies] == [["CT"]] * studies.count()
    assert set(studies.values_list("patient_id", flat=True)) == {"DEMO-0001"}
    counts = (Study.objects.count(), Instance.objects.count(), Blob.objects.count())
    seed()
    assert (Study.objects.count(), Instance.objects.count(), Blob.objects.count()) == counts


def test_seed_demo_gives_the_brain_mr_case_a_study_and_seeds_one_study_in_no_case_idempotently():
    """The brain MR case (shared with the consultant for telehealth triage) has a real MR study;
    one study the demo clinician uploaded with "No case (attach later)" waits to be attached.
    Both come through the ingest service and duplicate no other demo study; seeding again,
    even after the unattached study was attached to a case, changes nothing."""
    from apps.cases.demo import CASES
    from apps.cases.models import Case
    from apps.imaging.models import IngestJob

    seed()
    northwind = Study.objects.filter(organization__slug="northwind")
    [brain] = northwind.filter(case__title=CASES[1]["title"])
    assert brain.is_ready and brain.modality_list == ["MR"]
    assert (brain.series.count(), brain.instances.count()) == (2, 4)
    assert brain.created_by_job is not None  # ingested, not made by hand
    [unattached] = northwind.filter(case=None)
    assert unattached.is_ready and unattached.modality_list == ["CT"]
    assert unattached.created_by_job.created_by.email == "clinician@northwind.example"
    uids = list(northwind.latest_versions().values_list("study_instance_uid", flat=True))
    assert len(uids) == len(set(uids))

    def counts():
        return Study.objects.count(), Instance.objects.count(), Blob.objects.count(), IngestJob.objects.count()

    before = counts()
    seed()
    assert counts() == before
    assert northwind.get(pk=unattached.pk).case is None
    # a demo user attaches it to a case: the next seed leaves it there and makes no other
    chest = Case.objects.get(organization__slug="northwind", title="Chest CT - second opinion")
    Study.objects.filter(pk=unattached.pk).update(case=chest)
    seed()
    assert counts() == before
    assert Study.objects.get(pk=unattached.pk).case == chest


def test_a_demo_radiologist_finds_the_study_the_demo_clinician_left_in_no_case(client):
    """The upload page's "Studies in no case" lists it for a colleague of its uploader, who
    attaches it from its page."""
    from django.urls import reverse

    from apps.accounts.models import User

    seed()
    [unattached] = Study.objects.filter(organization__slug="northwind", case=None)
    client.force_login(User.objects.get(email="radiologist@northwind.example"))
    response = client.get(reverse("imaging:upload"))
    assert response.status_code == 200, response.status_code
    section = response.content.decode().split('id="no-case-heading"', 1)[1].split("</section>", 1)[0]
    assert f'href="{unattached.get_absolute_url()}#attach"' in section
    assert "Uploaded by Casey Clinician (Northwind)" in section
