"""The patient portal lists every study of every patient-education share, each with the state
of its copy (the policy's answer, ``download_refusals``): as many queries for one share of one
study as for six shares of three studies each. It read each share's studies, their copies and
the policy's refusal for each study one after another."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import CaseFactory, RenditionFactory, StudyFactory, member
from tests.pages import queries_and_html
from tests.patient_links import linked_patient_record

pytestmark = pytest.mark.django_db


def _shares(org, sharer, patient, n_shares: int, n_studies: int, *, named: bool) -> None:
    for _ in range(n_shares):
        # the patient's own cases (a patient-education share gives only the case's patient's account)
        case = CaseFactory(organization=org, created_by=sharer, responsible_clinician=sharer,
                           patient=linked_patient_record(patient, org))
        studies = [StudyFactory(organization=org, case=case) for _ in range(n_studies)]
        for study in studies:
            RenditionFactory(organization=org, study=study, kind="education", label="education_low_res")
        services.share_create(case=case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                              recipient_kind=RecipientKind.USER, grantee=patient, download_limit=2,
                              studies=studies[:1] if named else ())


@pytest.mark.parametrize("named", [False, True], ids=["whole_case", "named_study"])
def test_the_portal_costs_the_same_for_one_share_as_for_six(org_a, client_as, named):
    sharer = member(org_a, Role.CLINICIAN)
    few_patient, many_patient = member(org_a, Role.PATIENT), member(org_a, Role.PATIENT)
    _shares(org_a, sharer, few_patient, 1, 1, named=named)
    _shares(org_a, sharer, many_patient, 6, 3, named=named)
    url = reverse("education:portal")
    few, few_html = queries_and_html(client_as(few_patient), url)
    many, many_html = queries_and_html(client_as(many_patient), url)
    per_share = 1 if named else 3  # a share naming a study lists that one, not the case's others
    assert few_html.count('data-testid="education-download"') == 1
    assert many_html.count('data-testid="education-download"') == 6 * per_share
    assert many == few, (few, many)


def test_download_refusals_answers_as_download_refusal_does_for_each_study(org_a):
    """The batch form is the same decision: a share in each state the portal tells apart."""
    from apps.sharing import policy
    from apps.sharing.models import Grant

    sharer, patient = member(org_a, Role.CLINICIAN), member(org_a, Role.PATIENT)
    _shares(org_a, sharer, patient, 4, 2, named=False)
    _shares(org_a, sharer, patient, 1, 2, named=True)  # the other study of that case: not included
    grants = list(Grant.objects.filter(grantee=patient).order_by("pk"))
    Grant.objects.filter(pk=grants[0].pk).update(download_count=2)  # the limit reached
    Grant.objects.filter(pk=grants[1].pk).update(mfa_required=True)  # a second factor not passed
    Grant.objects.filter(pk=grants[2].pk).update(revoked_at=grants[2].created_at)  # no access
    studies = list(StudyFactory._meta.model.objects.filter(case__grants__grantee=patient).order_by("pk"))
    singles = [policy.download_refusal(patient, s, rendition="education") for s in studies]
    assert policy.download_refusals(patient, studies, rendition="education") == singles
    assert set(singles) == {None, policy.GrantRefusal.LIMIT_REACHED, policy.GrantRefusal.SECOND_FACTOR,
                            policy.GrantRefusal.NO_ACCESS, policy.GrantRefusal.NOT_INCLUDED}


def test_the_portal_reads_the_patients_memberships_and_grants_once(org_a, client_as):
    """The copies' states are decided on the request's memberships (``policy.request_facts``), as
    the navigation's links are: it read them once more."""
    from tests.pages import assert_read_once, page_queries

    sharer, patient = member(org_a, Role.CLINICIAN), member(org_a, Role.PATIENT)
    _shares(org_a, sharer, patient, 2, 2, named=False)
    got, queries = page_queries(client_as(patient), reverse("education:portal"))
    assert got == 200
    assert_read_once(queries, reader=True)


def test_a_share_that_reaches_its_limit_is_refused_on_the_next_visit(org_a, client_as):
    from apps.sharing.models import Grant

    sharer, patient = member(org_a, Role.CLINICIAN), member(org_a, Role.PATIENT)
    _shares(org_a, sharer, patient, 1, 1, named=False)
    client = client_as(patient)
    assert 'data-testid="education-download"' in client.get(reverse("education:portal")).content.decode()
    Grant.objects.filter(grantee=patient).update(download_count=2)
    html = client.get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-download"' not in html and 'data-testid="education-limit"' in html
