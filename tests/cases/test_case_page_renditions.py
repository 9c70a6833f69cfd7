"""The case page's Studies table shows the renditions a study has, as its study page decides
(``renditions_tags.rendition_made``). An RTPLAN (no pixel data) showed "Diagnostic - lossless
compressed", "Preview - lossy" and "Patient education" badges on the case page while its study
page said they were not available and the viewer had no image (found by QA)."""

from __future__ import annotations

import re
import shutil

import pytest
from django.urls import reverse
from pydicom.data import get_testdata_file

from apps.imaging.services import ingest_job_create, ingest_job_run
from apps.renditions.models import Kind, Rendition, Status
from apps.renditions.services import study_renditions_make
from tests.factories import CaseFactory, RenditionFactory, StudyFactory

pytestmark = pytest.mark.django_db


def _badges(html: str) -> dict[str, list[str]]:
    """Each study row of the case page (by its title) -> the labels of its rendition badges."""
    rows = re.findall(r'<tr data-testid="study">(.*?)</tr>', html, re.S)
    return {re.search(r'<a href="[^"]*">([^<]*)</a>', row).group(1):
            re.findall(r'data-testid="rendition-badge" data-label="([^"]+)"', row) for row in rows}


def _offered(html: str) -> set[str]:
    return set(re.findall(r'data-testid="download-([a-z]+)"', html))


def test_a_study_without_pixel_data_shows_only_what_it_has(org_a, clinician_a, client_as, tmp_path):
    case = CaseFactory(organization=org_a)
    shutil.copy(get_testdata_file("rtplan.dcm", download=False), tmp_path / "rtplan.dcm")
    job = ingest_job_run(job_id=ingest_job_create(organization=org_a, source_path=str(tmp_path), case=case,
                                                  enqueue=False).pk)
    [plan] = job.studies.all()
    plan.study_description = "Radiotherapy plan"
    plan.save(update_fields=["study_description"])
    study_renditions_make(study_id=plan.pk)
    made = dict(Rendition.objects.filter(study=plan).values_list("kind", "status"))
    assert made[Kind.PREVIEW] == made[Kind.LOSSLESS] == made[Kind.EDUCATION] == Status.UNAVAILABLE
    # beside it, a study with a preview made and an education image still being made
    images = StudyFactory(organization=org_a, case=case, study_description="CT chest")
    RenditionFactory(organization=org_a, study=images, kind=Kind.ORIGINAL, label="diagnostic_original")
    RenditionFactory(organization=org_a, study=images, kind=Kind.PREVIEW, label="preview_lossy")
    RenditionFactory(organization=org_a, study=images, kind=Kind.EDUCATION, label="education_low_res",
                     status=Status.PENDING)
    client = client_as(clinician_a)
    page = client.get(reverse("cases:case_detail", kwargs={"case_id": case.public_id}))
    assert page.status_code == 200
    badges = _badges(page.content.decode())
    assert badges == {"Radiotherapy plan": ["diagnostic_original"],
                      "CT chest": ["diagnostic_original", "preview_lossy"]}
    # what the study page offers of each: the same renditions
    for study in (plan, images):
        offered = _offered(client.get(reverse("imaging:study_detail",
                                              kwargs={"study_id": study.public_id})).content.decode())
        shown = {Rendition.objects.get(study=study, label=label).kind
                 for label in badges[study.study_description]}
        assert offered == shown, study.study_description
