"""``policy.shareable_cases``: the cases a user may share in an organization, as a query (the
invitation form's list of cases), is exactly what ``policy.can(user, SHARE_CASE, case)`` says of
each case, for every role and for grants that do and do not allow resharing, in the same few
queries however many cases there are."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.cases.models import Case, CaseStatus
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.policy import Action
from tests.factories import CaseFactory, GrantFactory, StudyFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def _expected(user, cases) -> set[int]:
    return {case.pk for case in cases if policy.can(user, Action.SHARE_CASE, case)}


def _shareable(user, org) -> set[int]:
    return set(policy.shareable_cases(user, org).values_list("pk", flat=True))


@pytest.fixture
def world(org_a, org_b):
    """Cases of organization A, open and closed, and of B; the grants are given to each actor
    by ``_grants_for``."""
    return {
        "open": CaseFactory.create_batch(3, organization=org_a),
        "closed": CaseFactory(organization=org_a, status=CaseStatus.CLOSED),
        "theirs": CaseFactory(organization=org_b),
    }


def _grants_for(user, org) -> dict[str, Case]:
    """One case of ``org`` under each kind of grant to ``user``: a live whole-case grant that
    allows resharing (shareable), one that only shows the case, one that allows resharing but
    names a study (its case is not shareable through it), one that allows resharing but asks a
    second factor not passed, and an expired one that allowed resharing."""
    now = timezone.now()
    cases = {}
    for kind, permissions, extra in (
            ("reshare", ["view", "reshare"], {}),
            ("view_only", ["view", "download_preview"], {}),
            ("study_scoped", ["view", "reshare"], {}),
            ("mfa", ["view", "reshare"], {"mfa_required": True}),
            ("expired", ["view", "reshare"], {"expires_at": now - timedelta(minutes=1)})):
        case = CaseFactory(organization=org)
        grant = GrantFactory(organization=org, case=case, grantee=user, permissions=permissions, **extra)
        if kind == "study_scoped":
            grant.studies.add(StudyFactory(organization=org, case=case))
        cases[kind] = case
    return cases


ROLES = [*Role.values, "no_membership", "inactive_clinician"]


@pytest.mark.parametrize("role", ROLES)
def test_the_shareable_cases_are_those_can_allows_for_every_role(role, org_a, org_b, world):
    if role == "no_membership":
        user = UserFactory()
    elif role == "inactive_clinician":
        user = member(org_a, Role.CLINICIAN)
        user.is_active = False
        user.save()
    else:
        user = member(org_a, role)
    granted = _grants_for(user, org_a)
    everything = list(Case.objects.all())
    in_a = [case for case in everything if case.organization_id == org_a.pk]
    assert _shareable(user, org_a) == _expected(user, in_a)
    assert _shareable(user, org_b) == _expected(user, [world["theirs"]]) == set()
    # and what that is, written by hand
    sharing_role = role in policy.roles_with(Action.SHARE_CASE)
    if sharing_role:
        assert _shareable(user, org_a) == {case.pk for case in in_a}  # closed ones too: the form keeps the open
    elif role == "inactive_clinician":
        assert _shareable(user, org_a) == set()
    elif role == Role.PATIENT:
        # a patient of the share's organization is given only what a patient-education share gives
        # (the education copy), never resharing, whatever the grant names (8c4114e)
        assert _shareable(user, org_a) == set()
    else:
        assert _shareable(user, org_a) == {granted["reshare"].pk}


def test_a_consultant_shares_what_a_live_resharing_grant_names_and_nothing_else(org_a, org_b):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    granted = _grants_for(consultant, org_a)
    theirs = CaseFactory(organization=org_b)
    GrantFactory(organization=org_b, case=theirs, grantee=consultant, permissions=["view", "reshare"])
    CaseFactory.create_batch(3, organization=org_a)
    assert _shareable(consultant, org_a) == {granted["reshare"].pk}
    assert _shareable(consultant, org_b) == {theirs.pk}  # each organization's own
    # the grant closed with its case, revoked: nothing
    Case.objects.filter(pk=granted["reshare"].pk).update(status=CaseStatus.CLOSED)
    assert _shareable(consultant, org_a) == set() == _expected(consultant, Case.objects.for_org(org_a.pk))


def test_a_group_grant_that_allows_resharing_counts_for_its_members(org_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a)
    grant = GrantFactory(organization=org_a, case=case, grantee=None, group_name="Tumor board guests",
                         permissions=["view", "reshare"])
    grant.group_members.add(consultant)
    assert _shareable(consultant, org_a) == {case.pk} == _expected(consultant, [case])


def test_a_role_that_shares_only_the_cases_its_holder_owns(org_a, monkeypatch):
    """Should the table give clinicians sharing only on the cases they own (``OWNER_NEEDS``), the
    query follows it, as ``can`` does: their own cases (created, or responsible for), plus those a
    resharing grant names; not the others."""
    without = policy.ROLE_ACTIONS[Role.CLINICIAN] - {Action.SHARE_CASE}
    monkeypatch.setitem(policy.ROLE_ACTIONS, Role.CLINICIAN, without)
    monkeypatch.setitem(policy.OWNER_NEEDS, Action.SHARE_CASE, Action.VIEW_CASE)
    clinician = member(org_a, Role.CLINICIAN)
    created = CaseFactory(organization=org_a, created_by=clinician)
    responsible = CaseFactory(organization=org_a, responsible_clinician=clinician)
    others = CaseFactory.create_batch(3, organization=org_a)
    granted = _grants_for(clinician, org_a)
    assert _shareable(clinician, org_a) == {created.pk, responsible.pk, granted["reshare"].pk}
    assert _shareable(clinician, org_a) == _expected(clinician, Case.objects.for_org(org_a.pk))
    assert not set(c.pk for c in others) & _shareable(clinician, org_a)
    # a role whose table lacks what owners need shares nothing of its own
    coordinator = member(org_a, Role.COORDINATOR)
    owned = CaseFactory(organization=org_a, created_by=coordinator)
    monkeypatch.setitem(policy.OWNER_NEEDS, Action.SHARE_CASE, Action.VIEW_IMAGES)
    assert owned.pk not in _shareable(coordinator, org_a)
    assert _shareable(coordinator, org_a) == _expected(coordinator, Case.objects.for_org(org_a.pk)) == set()


def _queries(user, org) -> int:
    with CaptureQueriesContext(connection) as ctx:
        list(policy.shareable_cases(user, org))
    return len(ctx.captured_queries)


def test_the_query_costs_the_same_for_3_cases_as_for_30(org_a, clinician_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    counts = {}
    for n in (3, 30):
        while Case.objects.count() < n:
            case = CaseFactory(organization=org_a)
            GrantFactory(organization=org_a, case=case, grantee=consultant, permissions=["view", "reshare"])
        counts[n] = (_queries(clinician_a, org_a), _queries(consultant, org_a))
        assert len(policy.shareable_cases(consultant, org_a)) == n
    assert counts[3] == counts[30], counts
