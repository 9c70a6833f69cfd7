"""A grant scoped to some studies of a case shows those studies, not the case's others: the
other study's page, frames and download are 404 to the grantee (as if it did not exist), while
the case's owner sees both. Series, instances, uploads and ingest jobs follow the same rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.imaging.models import IngestJob, Instance, Series, Study, Upload
from apps.organizations.models import Role
from apps.sharing import services
from tests.factories import CaseFactory, InstanceFactory, SeriesFactory, StudyFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(org_a):
    owner = member(org_a, Role.CLINICIAN, email="owner@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)
    studies = [StudyFactory(organization=org_a, case=case) for _ in range(2)]
    instances = [InstanceFactory(organization=org_a, series=SeriesFactory(organization=org_a, study=s))
                 for s in studies]
    upload = Upload.objects.create(organization=org_a, case=case, created_by=owner, length=1,
                                   expires_at=timezone.now() + timedelta(hours=1))
    IngestJob.objects.create(organization=org_a, case=case, upload=upload, created_by=owner)
    grantee = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    return owner, case, studies, instances, grantee


def _grant(case, owner, grantee, studies=()):
    return services.grant_create(case=case, grantee=grantee, permissions=["view", "download_preview"],
                                 by=owner, renditions=["preview"], studies=studies,
                                 expires_at=timezone.now() + timedelta(hours=24))


def _urls(study: Study, instance: Instance) -> list[str]:
    return [reverse("imaging:study_detail", kwargs={"study_id": study.public_id}),
            reverse("viewer:viewer", kwargs={"study_id": study.public_id}),
            reverse("viewer:frame", kwargs={"instance_id": instance.public_id}),
            reverse("renditions:study_download", kwargs={"study_id": study.public_id})]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_study_scoped_grant_hides_the_cases_other_studies(world):
    owner, case, (shared, other), (shared_instance, other_instance), grantee = world
    _grant(case, owner, grantee, studies=[shared])
    as_grantee, as_owner = _client(grantee), _client(owner)
    for url in _urls(other, other_instance):
        assert as_grantee.get(url).status_code == 404, url
        assert as_owner.get(url).status_code != 404, url
    for url in _urls(shared, shared_instance):
        assert as_grantee.get(url).status_code != 404, url
        assert as_owner.get(url).status_code != 404, url

    assert list(Study.objects.visible_to(grantee)) == [shared]
    assert set(Study.objects.visible_to(owner)) == {shared, other}
    assert list(Series.objects.visible_to(grantee)) == [shared_instance.series]
    assert list(Instance.objects.visible_to(grantee)) == [shared_instance]
    # an upload (and its job, its per-file report) may span the case's studies: not shown
    assert not Upload.objects.visible_to(grantee).exists()
    assert not IngestJob.objects.visible_to(grantee).exists()
    assert Upload.objects.visible_to(owner).count() == IngestJob.objects.visible_to(owner).count() == 1


def test_whole_case_grant_shows_every_study_of_the_case(world):
    owner, case, studies, instances, grantee = world
    _grant(case, owner, grantee)
    assert set(Study.objects.visible_to(grantee)) == set(studies)
    assert set(Instance.objects.visible_to(grantee)) == set(instances)
    assert Upload.objects.visible_to(grantee).count() == IngestJob.objects.visible_to(grantee).count() == 1
    as_grantee = _client(grantee)
    for study, instance in zip(studies, instances, strict=True):
        for url in _urls(study, instance):
            assert as_grantee.get(url).status_code != 404, url
