"""The study page reads the signed-in user's memberships once a request: the middleware's
reading (``request.my_memberships``), which the page's decisions, its navigation and its
download buttons share through ``policy.request_facts`` (each read them again: five readings in all,
and a reader's grants twice). Its queries do not grow with the study's series."""

from __future__ import annotations

import pytest

from apps.organizations.models import Role
from apps.sharing.usecases import UseCase
from tests.factories import CaseFactory, GrantFactory, InstanceFactory, SeriesFactory, StudyFactory, member
from tests.pages import assert_read_once, page_queries

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}


def study_with_series(org, series: int = 1):
    study = StudyFactory(organization=org, case=CaseFactory(organization=org))
    for number in range(1, series + 1):
        InstanceFactory.create_batch(2, organization=org,
                                     series=SeriesFactory(organization=org, study=study, series_number=number))
    return study


def page_reader(who: str, org_a, org_b, study):
    """A staff member of the study's organization, or a reader outside it holding a share named
    to them (a consultant the organization admitted; a clinician of another organization), or a
    patient holding the education share of its case."""
    if who == "staff":
        return member(org_a, Role.RADIOLOGIST)
    if who == "patient":
        patient = member(org_a, Role.PATIENT)
        GrantFactory(organization=org_a, case=study.case, grantee=patient, use_case=UseCase.PATIENT_EDUCATION,
                     permissions=["view", "download_preview"], renditions=["education"])
        return patient
    reader = member(org_a, Role.EXTERNAL_CONSULTANT) if who == "consultant" else member(org_b, Role.CLINICIAN)
    GrantFactory(organization=org_a, case=study.case, grantee=reader, **PREVIEW)
    return reader


@pytest.mark.parametrize(("who", "status"), [("staff", 200), ("consultant", 200), ("other_org_reader", 200),
                                             ("patient", 403)])
def test_the_study_page_reads_the_users_memberships_once(org_a, org_b, client_as, who, status):
    """A patient is kept to the patient portal (apps.accounts.middleware): refused, on the same
    one reading."""
    study = study_with_series(org_a)
    got, queries = page_queries(client_as(page_reader(who, org_a, org_b, study)), study.get_absolute_url())
    assert got == status
    assert_read_once(queries, reader=who in ("consultant", "other_org_reader"))


@pytest.mark.parametrize("who", ["staff", "consultant"])
def test_the_study_page_costs_the_same_for_one_series_as_for_five(org_a, org_b, client_as, who):
    counts = {}
    for n in (1, 5):
        study = study_with_series(org_a, series=n)
        status, queries = page_queries(client_as(page_reader(who, org_a, org_b, study)),
                                                     study.get_absolute_url())
        assert status == 200
        counts[n] = len(queries)
    assert counts[1] == counts[5], counts


def test_the_upload_page_reads_the_users_memberships_once(org_a, clinician_a, client_as):
    """Whether the user may upload there and which cases they may upload into are decided on the
    request's memberships (``policy.request_facts``); each had read them again (three readings in
    all). Decisions unchanged: a role that may no longer upload is refused on the next visit."""
    from django.urls import reverse

    from apps.organizations.models import Membership

    CaseFactory(organization=org_a)
    client = client_as(clinician_a)
    status, queries = page_queries(client, reverse("imaging:upload"))
    assert status == 200
    assert_read_once(queries, reader=False)
    Membership.objects.filter(user=clinician_a, organization=org_a).update(role=Role.ORG_ADMIN)
    assert client.get(reverse("imaging:upload")).status_code == 403
