"""The case pages read the signed-in user's memberships once a request: the middleware's reading
(``request.my_memberships``), on which their decisions and the navigation's are made
(``policy.request_facts``). The case page read them twice more (its buttons, and whether the
user may upload into the case), the case list, the boards and a board's page once more each; a
reader's grants are read once by the policy (tests/imaging/test_page_queries.py does the same for
the study page)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.cases.models import BoardState
from apps.organizations.models import Membership, Role
from tests.factories import BoardSessionFactory, CaseFactory, GrantFactory, PatientFactory, member
from tests.imaging.test_page_queries import page_reader, study_with_series
from tests.pages import assert_read_once, page_queries, reads_of

pytestmark = pytest.mark.django_db

READERS = [("staff", 200), ("consultant", 200), ("other_org_reader", 200)]


@pytest.mark.parametrize(("who", "status"), READERS)
def test_the_case_page_reads_the_users_memberships_once(org_a, org_b, client_as, who, status):
    study = study_with_series(org_a)
    client = client_as(page_reader(who, org_a, org_b, study))
    got, queries = page_queries(client, reverse("cases:case_detail", args=[study.case.public_id]))
    assert got == status
    assert_read_once(queries, reader=who != "staff")


@pytest.mark.parametrize("who", ["staff", "consultant", "other_org_reader"])
@pytest.mark.parametrize("url", ["cases:case_list", "cases:board_list"])
def test_the_case_list_and_the_boards_read_the_users_memberships_once(org_a, org_b, client_as, who, url):
    study = study_with_series(org_a)
    got, queries = page_queries(client_as(page_reader(who, org_a, org_b, study)), reverse(url))
    assert got == 200
    assert len(reads_of(queries, "organizations_membership")) == 1


@pytest.mark.parametrize("state", [BoardState.SCHEDULED, BoardState.LIVE])
def test_a_boards_page_reads_the_hosts_memberships_once(org_a, client_as, state):
    host = member(org_a, Role.CLINICIAN, email="host@alpha.example")
    board = BoardSessionFactory(organization=org_a, host=host, state=state)
    got, queries = page_queries(client_as(host), reverse("cases:board_detail", args=[board.public_id]))
    assert got == 200
    assert len(reads_of(queries, "organizations_membership")) == 1


@pytest.mark.parametrize("who", ["staff", "consultant", "other_org_reader"])
def test_the_case_lists_search_reads_the_users_memberships_once(org_a, org_b, client_as, who):
    """The search asks whether the user may find a case by who the patient is on the request's
    memberships, as the list's buttons do (it read them again, once more)."""
    study = study_with_series(org_a)
    client = client_as(page_reader(who, org_a, org_b, study))
    got, queries = page_queries(client, reverse("cases:case_list") + "?status=&q=Lung")
    assert got == 200
    assert len(reads_of(queries, "organizations_membership")) == 1


def test_a_role_that_loses_the_patients_identity_stops_finding_the_case_by_it(org_a, client_as):
    """The search decides on that request's memberships: the next search reads them again."""
    staff = member(org_a, Role.CLINICIAN, email="searcher@alpha.example")
    case = CaseFactory(organization=org_a, patient=PatientFactory(organization=org_a, mrn="MRN-40411"),
                       title="Hip follow-up")
    GrantFactory(organization=org_a, case=case, grantee=staff, permissions=["view"])  # still sees the case
    client = client_as(staff)
    search = reverse("cases:case_list") + "?status=&q=MRN-40411"
    assert "Hip follow-up" in client.get(search).content.decode()
    Membership.objects.filter(user=staff, organization=org_a).update(role=Role.EXTERNAL_CONSULTANT)
    assert "Hip follow-up" in client.get(reverse("cases:case_list") + "?status=").content.decode()
    assert "Hip follow-up" not in client.get(search).content.decode()


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.COORDINATOR])
def test_the_board_forms_case_search_reads_the_users_memberships_once(org_a, client_as, role):
    """The search of the board form's cases (cases:board_choices, asked as the text is typed)
    decides whether the user may schedule boards, and whether they may find a case by who the
    patient is, on the request's memberships: it read them twice more."""
    CaseFactory(organization=org_a, title="Chest CT")
    client = client_as(member(org_a, role, email="scheduler@alpha.example"))
    got, queries = page_queries(client, reverse("cases:board_choices") + "?list=cases&q=chest")
    assert got == 200
    assert len(reads_of(queries, "organizations_membership")) == 1


def test_a_role_that_loses_the_boards_is_refused_the_next_board_search(org_a, client_as):
    staff = member(org_a, Role.CLINICIAN, email="scheduler@alpha.example")
    CaseFactory(organization=org_a, patient=PatientFactory(organization=org_a, mrn="MRN-40412"), title="Hip CT")
    client = client_as(staff)
    url = reverse("cases:board_choices") + "?list=cases&q=MRN-40412"
    assert [c["label"] for c in client.get(url).json()["choices"]] == ["Hip CT"]
    Membership.objects.filter(user=staff, organization=org_a).update(role=Role.EXTERNAL_CONSULTANT)
    assert client.get(url).status_code == 403
