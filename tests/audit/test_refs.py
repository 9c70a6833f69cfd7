"""Every event about an object of a study or a case carries that study's and case's refs, so that
the audit page's study and case searches find it: a refused frame (an image) after its share was
revoked was recorded with no case and no study, and ``?study=<id>&outcome=denied`` found nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions
from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters, event_search
from apps.audit.services import record, record_hidden_refusal
from apps.audit.templatetags.audit_tags import id_breaks
from apps.organizations.models import Role
from tests.factories import (
    CaseFactory,
    DeidExportFactory,
    InstanceFactory,
    RenditionFactory,
    RenditionFileFactory,
    SeriesFactory,
    StudyFactory,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(org_a, clinician_a):
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    return StudyFactory(organization=org_a, case=case)


def _found(org, **filters) -> list[int]:
    return [event.pk for event in event_search(organization=org, filters=AuditFilters(**filters))]


def test_a_frame_refused_after_the_share_was_revoked_is_found_by_its_study_and_case(
        org_a, admin_a, clinician_a, client_as, study):
    from apps.sharing import services

    instance = InstanceFactory(organization=org_a, series=SeriesFactory(organization=org_a, study=study))
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    grant = services.grant_create(case=study.case, grantee=consultant, permissions=["view"], by=clinician_a,
                                  expires_at=timezone.now() + timedelta(hours=24))
    services.grants_revoke(grants=[grant], by=clinician_a, reason="test")
    frame = reverse("viewer:frame", kwargs={"instance_id": instance.public_id})
    assert client_as(consultant).get(frame + "?quality=preview").status_code in (403, 404)
    denied = AuditEvent.objects.get(action=actions.ACCESS_DENIED, actor=consultant)
    assert (denied.target_type, denied.target_id) == ("instance", str(instance.public_id))
    assert (denied.study_ref, denied.case_ref) == (study.public_id, study.case.public_id)
    assert _found(org_a, study=str(study.public_id), outcome="denied") == [denied.pk]
    assert denied.pk in _found(org_a, case=str(study.case.public_id), outcome="denied")
    page = client_as(admin_a).get(reverse("audit:event_list"), {"study": str(study.public_id), "outcome": "denied"})
    assert page.status_code == 200 and id_breaks(str(instance.public_id)) in page.content.decode()


def test_rows_of_a_study_carry_its_study_and_case(org_a, clinician_a, study):
    series = SeriesFactory(organization=org_a, study=study)
    instance = InstanceFactory(organization=org_a, series=series)
    rendition = RenditionFactory(organization=org_a, study=study)
    targets = [series, instance, rendition,
               RenditionFileFactory(organization=org_a, study=study, rendition=rendition, instance=instance),
               DeidExportFactory(organization=org_a, study=study)]
    for target in targets:
        fresh = type(target).objects.get(pk=target.pk)  # nothing of its study loaded
        event = record(action=actions.ACCESS_DENIED, actor=clinician_a, organization=org_a, target=fresh,
                       outcome="denied")
        assert (event.study_ref, event.case_ref) == (study.public_id, study.case.public_id), type(target)
    # a study with no case yet: its study only
    loose = StudyFactory(organization=org_a, case=None)
    event = record(action=actions.ACCESS_DENIED, actor=clinician_a, organization=org_a,
                   target=SeriesFactory(organization=org_a, study=loose), outcome="denied")
    assert (event.study_ref, event.case_ref) == (loose.public_id, None)


def test_refs_come_from_what_the_caller_loaded_without_more_queries(org_a, clinician_a, study,
                                                                    django_assert_num_queries):
    from apps.imaging.models import Instance

    target = InstanceFactory(organization=org_a, series=SeriesFactory(organization=org_a, study=study))
    loaded = Instance.objects.select_related("study__case").get(pk=target.pk)
    with django_assert_num_queries(0):
        from apps.audit.services import _refs_of

        assert _refs_of(loaded) == (study.case.public_id, study.public_id)
    unloaded = Instance.objects.get(pk=target.pk)
    with django_assert_num_queries(1):  # the study's and its case's ids together
        assert _refs_of(unloaded) == (study.case.public_id, study.public_id)


def test_a_named_case_or_study_wins_and_a_named_study_gives_its_case(org_a, clinician_a, study):
    other = CaseFactory(organization=org_a)
    instance = InstanceFactory(organization=org_a, series=SeriesFactory(organization=org_a, study=study))
    named = record(action=actions.ACCESS_DENIED, organization=org_a, target=instance, case=other, outcome="denied")
    assert (named.case_ref, named.study_ref) == (other.public_id, study.public_id)
    by_study = record(action=actions.VIEWER_CLOSED, organization=org_a, study=study)
    assert (by_study.case_ref, by_study.study_ref) == (study.case.public_id, study.public_id)


def test_a_hidden_series_refusal_carries_its_study_and_case(org_a, org_b, study):
    from apps.imaging.models import Series

    series = SeriesFactory(organization=org_a, study=study)
    outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    record_hidden_refusal(user=outsider, model=Series, public_id=series.public_id, request=None,
                          wanted="view_images")
    event = AuditEvent.objects.get(action=actions.ACCESS_DENIED, actor=outsider)
    assert (event.organization_id, event.study_ref, event.case_ref) == (org_a.pk, study.public_id,
                                                                       study.case.public_id)
