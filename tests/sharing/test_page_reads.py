"""The shared case, "Shared with me" and "My shares" read the signed-in user's memberships once a
request: the middleware's reading (``request.my_memberships``), on which their decisions are made
(``policy.request_facts``); and a reader's grants once. The shared case read the memberships five
times (see the case, the renditions, the studies' images, the originals one may ask for) and a
reader's grants five times; "Shared with me" and "My shares" the memberships twice."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Membership, Role
from tests.cases.test_page_reads import READERS
from tests.factories import CaseFactory, GrantFactory, OriginalRequestFactory, member, open_anonymous_link
from tests.imaging.test_page_queries import page_reader, study_with_series
from tests.pages import assert_read_once, page_queries, reads_of

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("who", "status"), READERS)
def test_the_shared_case_reads_the_users_memberships_and_grants_once(org_a, org_b, client_as, who, status):
    study = study_with_series(org_a)
    client = client_as(page_reader(who, org_a, org_b, study))
    got, queries = page_queries(client, reverse("sharing:shared_case", args=[study.case.public_id]))
    assert got == status
    # the staff member's own grants are read too (none): whose grants the page lists
    assert_read_once(queries, reader=True)


def test_the_shared_case_reads_an_anonymous_links_grants_once(org_a, client, clinician_a):
    from apps.sharing import services
    from apps.sharing.usecases import RecipientKind, UseCase

    study = study_with_series(org_a)
    org_a.anonymous_links_enabled = True
    org_a.save()
    _grant, _link, raw = services.share_create(case=study.case, by=clinician_a, use_case=UseCase.CUSTOM,
                                               recipient_kind=RecipientKind.ANONYMOUS)
    assert open_anonymous_link(client, raw).status_code == 302
    got, queries = page_queries(client, reverse("sharing:shared_case", args=[study.case.public_id]))
    assert got == 200
    assert reads_of(queries, "organizations_membership") == []
    links = [sql for sql in reads_of(queries, "sharing_sharelink") if '"sharing_grant"."id"' in sql.split(" FROM ")[0]]
    assert len(links) == 1, links


@pytest.mark.parametrize(("who", "status"), READERS)
@pytest.mark.parametrize("url", ["sharing:shared_with_me", "sharing:my_shares"])
def test_shared_with_me_and_my_shares_read_the_users_memberships_once(org_a, org_b, client_as, who, status, url):
    study = study_with_series(org_a)
    got, queries = page_queries(client_as(page_reader(who, org_a, org_b, study)), reverse(url))
    assert got == status
    assert_read_once(queries, reader=url == "sharing:shared_with_me" and who != "staff")


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.RADIOLOGIST])
def test_my_shares_with_shares_and_requests_reads_the_memberships_and_grants_once(org_a, client_as, role):
    """A sharer's own shares (whether each may be renewed) and the requests for an original they
    may decide are decided on the request's memberships and grants (``policy.request_facts``):
    each list read the memberships once more, and the user's grants on the cases again."""
    sharer = member(org_a, role, email="sharer@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="asker@alpha.example")
    case = CaseFactory(organization=org_a)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=sharer,
                         permissions=["view", "download_preview"])
    OriginalRequestFactory(organization=org_a, grant=grant)
    got, queries = page_queries(client_as(sharer), reverse("sharing:my_shares"))
    assert got == 200
    assert_read_once(queries, reader=True)  # the sharer's own grants on the case (none): whose renewal decides


def test_a_role_that_loses_the_decisions_stops_seeing_the_requests_on_the_next_visit(org_a, client_as):
    radiologist = member(org_a, Role.RADIOLOGIST, email="decider@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="asker@alpha.example")
    grant = GrantFactory(organization=org_a, case=CaseFactory(organization=org_a), grantee=consultant,
                         created_by=radiologist, permissions=["view", "download_preview"])
    waiting = OriginalRequestFactory(organization=org_a, grant=grant)
    client = client_as(radiologist)
    decide = reverse("sharing:original_request_decide", args=[waiting.public_id])
    assert decide in client.get(reverse("sharing:my_shares")).content.decode()
    Membership.objects.filter(user=radiologist, organization=org_a).update(role=Role.COORDINATOR)
    assert decide not in client.get(reverse("sharing:my_shares")).content.decode()
