"""Pages and API lists whose queries must not grow with the rows they show, measured with few
rows and with many (3 and 30): the viewer (series and instances), a tumor board (cases and
participants), a shared case through an anonymous link (studies and grants), the audit page, and
the REST API's lists. The lists that page are tested in each app's test_lists.py."""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.middleware import LAST_SEEN
from apps.organizations.models import Role
from apps.sharing import services as sharing
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import (
    AuditEventFactory,
    BoardSessionFactory,
    CaseFactory,
    GrantFactory,
    InstanceFactory,
    RenditionFactory,
    SeriesFactory,
    StudyFactory,
    UserFactory,
    member,
    open_anonymous_link,
)
from tests.pages import queries_and_html

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}


def _same(counts: dict[int, int]) -> None:
    assert counts[3] == counts[30], counts


def test_the_viewer_costs_the_same_for_3_series_as_for_30(org_a, client_as):
    radiologist = member(org_a, Role.RADIOLOGIST)
    counts = {}
    for n in (3, 30):
        study = StudyFactory(organization=org_a)
        for i in range(n):
            series = SeriesFactory(organization=org_a, study=study, series_number=i + 1)
            InstanceFactory.create_batch(2, organization=org_a, series=series)
        counts[n], _html = queries_and_html(client_as(radiologist), reverse("viewer:viewer", args=[study.public_id]))
    _same(counts)


def _instances(series, n: int) -> None:
    """``n`` more instances of ``series`` sharing one stored blob (fast: the page reads no pixels)."""
    from apps.imaging.models import Instance

    blob = InstanceFactory(organization=series.organization, series=series).blob
    Instance.objects.bulk_create(
        Instance(organization=series.organization, study=series.study, series=series, blob=blob, size=blob.size,
                 sha256=blob.sha256, sop_instance_uid=f"1.2.826.0.1.3680043.10.9.{series.pk}.{i}",
                 instance_number=i + 2, rows=512, columns=512) for i in range(n))


def test_the_viewer_costs_the_same_and_weighs_the_same_for_30_instances_as_for_300(org_a, client_as, monkeypatch):
    """The page embeds the series list and the first series' first page of instances: the other
    series' instances (asked for when picked), and the rest of a long first series, are not in it."""
    from apps.viewer import selectors

    monkeypatch.setattr(selectors, "SERIES_PAGE", 20)
    radiologist = member(org_a, Role.RADIOLOGIST)
    counts, sizes = {}, {}
    for n in (30, 300):
        study = StudyFactory(organization=org_a)
        for number in (1, 2, 3):
            _instances(SeriesFactory(organization=org_a, study=study, series_number=number), n - 1)
        counts[n], html = queries_and_html(client_as(radiologist), reverse("viewer:viewer", args=[study.public_id]))
        sizes[n] = len(html.replace(str(study.public_id), ""))
        assert f'"count": {n}, "frames": {n}' in html
    assert counts[30] == counts[300], counts
    assert abs(sizes[300] - sizes[30]) < 200, sizes  # the same but for the counts' digits and ids


def test_a_tumor_board_costs_the_same_for_3_cases_as_for_30(org_a, clinician_a, client_as):
    counts = {}
    for n in (3, 30):
        board = BoardSessionFactory(organization=org_a, host=clinician_a)
        for _ in range(n):
            board.cases.add(CaseFactory(organization=org_a))
            board.participants.add(member(org_a, Role.EXTERNAL_CONSULTANT))
        counts[n], _html = queries_and_html(client_as(clinician_a), reverse("cases:board_detail",
                                                                            args=[board.public_id]))
    _same(counts)


def test_a_shared_case_through_a_link_costs_the_same_for_3_studies_as_for_30(org_a, clinician_a):
    org_a.anonymous_links_enabled = True
    org_a.save()
    counts = {}
    for n in (3, 30):
        case = CaseFactory(organization=org_a)
        for _ in range(n):
            RenditionFactory(organization=org_a, study=StudyFactory(organization=org_a, case=case))
            GrantFactory(organization=org_a, case=case, grantee=member(org_a, Role.EXTERNAL_CONSULTANT), **PREVIEW)
        _grant, _link, raw = sharing.share_create(case=case, by=clinician_a, use_case=UseCase.CUSTOM,
                                                  recipient_kind=RecipientKind.ANONYMOUS)
        holder = Client()
        assert open_anonymous_link(holder, raw).status_code == 302
        counts[n], html = queries_and_html(holder, reverse("sharing:shared_case", args=[case.public_id]))
        assert html.count('data-testid="open-viewer"') == n
    _same(counts)


def test_the_audit_page_costs_the_same_for_3_events_as_for_30(org_a, admin_a, client_as):
    counts = {}
    for n in (3, 30):
        AuditEventFactory.create_batch(n - (3 if n == 30 else 0), organization=org_a, actor=member(org_a))
        counts[n], _html = queries_and_html(client_as(admin_a), reverse("audit:event_list"))
    _same(counts)


@pytest.mark.parametrize("url", ["/api/v1/grants/", "/api/v1/grants/received/", "/api/v1/organizations/"])
def test_the_api_lists_cost_the_same_for_3_rows_as_for_30(org_a, client_as, url):
    counts = {}
    for n in (3, 30):
        sharer, consultant = member(org_a, Role.CLINICIAN), member(org_a, Role.EXTERNAL_CONSULTANT)
        for _ in range(n):
            case = CaseFactory(organization=org_a, created_by=sharer, responsible_clinician=sharer)
            grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=sharer, **PREVIEW)
            grant.studies.set([StudyFactory(organization=org_a, case=case)])
        client = client_as(consultant if "received" in url else sharer)
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200
        assert response.json()["count"] >= (1 if "organizations" in url else n)
        counts[n] = len(ctx.captured_queries)
    _same(counts)


# --- what a page read twice, read once (h15) --------------------------------------------------

def _shared_three_ways(org_a):
    """A clinician who shared 3 cases (a study of each) with a named consultant, for the pages
    below: the sharer, the consultant and the cases."""
    sharer, consultant = member(org_a, Role.CLINICIAN), member(org_a, Role.EXTERNAL_CONSULTANT)
    cases = []
    for line in ("Oncology", "Cardiology", "Neurology"):
        case = CaseFactory(organization=org_a, created_by=sharer, responsible_clinician=sharer, service_line=line)
        grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=sharer, **PREVIEW)
        grant.studies.set([StudyFactory(organization=org_a, case=case)])
        cases.append(case)
    return sharer, consultant, cases


@pytest.mark.parametrize(("who", "most"), [("sharer", 7), ("consultant", 9)])
def test_the_case_list_reads_its_counts_and_service_lines_in_one_query(org_a, client_as, who, most):
    """The counts (open, closed, all) and the service lines of the filter read the same cases:
    one grouped query (cases.selectors.case_counts_and_service_lines), not two. Before: 8 queries
    for the sharer, 10 for the consultant; now 7 and 9."""
    sharer, consultant, _cases = _shared_three_ways(org_a)
    queries, html = queries_and_html(client_as(sharer if who == "sharer" else consultant), reverse("cases:case_list"))
    assert all(f'value="{line}"' in html for line in ("Oncology", "Cardiology", "Neurology"))
    assert queries <= most, queries


def test_the_case_page_reads_the_holders_memberships_once(org_a, client_as):
    """Who has access: what each share gives its holder and whether its patient is given none of
    its studies read the same holders' memberships (policy.grants_give_and_held_back): once, not
    twice. Before: 22 queries; now 21."""
    sharer, consultant, cases = _shared_three_ways(org_a)
    queries, html = queries_and_html(client_as(sharer), reverse("cases:case_detail", args=[cases[0].public_id]))
    assert consultant.email in html  # listed among who has access
    assert queries <= 21, queries


@pytest.mark.parametrize(("url", "who", "most"), [
    ("/api/v1/grants/", "sharer", 6), ("/api/v1/grants/received/", "consultant", 6),
])
def test_the_api_lists_read_no_idle_limit_within_a_minute(org_a, client_as, url, who, most):
    """A session used within the last minute cannot be past any idle limit (a minute at least),
    and an API call tells no browser its limit: the gate does not read it
    (apps.accounts.middleware; tests/accounts/test_idle_limit_deferred.py). Before: 7 queries
    each; now 6."""
    sharer, consultant, _cases = _shared_three_ways(org_a)
    client = client_as(sharer if who == "sharer" else consultant)
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200 and response.json()["count"] == 3
    assert len(ctx.captured_queries) <= most, len(ctx.captured_queries)


# --- what every page's middleware and navigation read, read once (h13) -------------------------
# The access gate (the idle limit; the patient portal's gate), the active organization, the
# navigation ("Shares") and the decisions' roles each read the person's memberships or the live
# grants addressed to them again: now once a request (``policy.memberships_read``,
# ``policy._live_grants_held``, kept in ``policy.request_memo`` until the request writes).

def _reads(client, url: str, *, idle: float | None = None) -> tuple[int, list[str]]:
    """A warm GET of ``url`` (after ``idle`` seconds without activity, if given): its status and
    its queries' SQL, but the audit trail's own (a refusal is recorded: not this part's cost)."""
    client.get(url)
    if idle is not None:
        session = client.session
        session[LAST_SEEN] = time.time() - idle
        session.save()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return response.status_code, [q["sql"] for q in ctx.captured_queries if '"audit_audit' not in q["sql"]]


def _membership_reads(queries: list[str]) -> int:
    """The reads of the person's memberships themselves (not the subqueries that scope rows)."""
    return sum(bool(re.match(r'SELECT (DISTINCT )?"organizations_membership"\.', sql)) for sql in queries)


def _people(org_a) -> dict:
    """A clinician who shared 3 cases with a consultant member, and an account of no organization
    holding a share of one of them."""
    sharer, consultant, cases = _shared_three_ways(org_a)
    outsider = UserFactory()
    GrantFactory(organization=org_a, case=cases[0], grantee=outsider, created_by=sharer, **PREVIEW)
    return {"clinician": sharer, "consultant": consultant, "no_membership": outsider}


@pytest.mark.parametrize(("who", "most"), [("clinician", 4), ("consultant", 5), ("no_membership", 6)])
def test_the_404_page_reads_memberships_and_live_grants_once(org_a, client_as, who, most):
    """Session, user, memberships, the live grants addressed to the person (the idle limit the
    page tells the browser, the "Shares" link, and for an account of no organization the gate's
    portal question), what they made for the "Shares" link, a patient's history. Before: 4, 6
    and 8 queries; now 4, 5 and 6."""
    status, queries = _reads(client_as(_people(org_a)[who]), "/no-such-page/")
    assert status == 404
    assert _membership_reads(queries) == 1
    assert len(queries) <= most, queries


@pytest.mark.parametrize(("who", "most"), [("clinician", 4), ("consultant", 5)])
def test_the_403_page_reads_the_memberships_once(org_a, client_as, who, most):
    """A refusal decided on the request's memberships: the policy's roles are the rows the
    switcher read (``policy.memberships_read``), not a second read. Before: the memberships
    read twice, 5 and 7 queries besides the audit trail's; now once, 4 and 5."""
    status, queries = _reads(client_as(_people(org_a)[who]), reverse("audit:event_list"))
    assert status == 403
    assert _membership_reads(queries) == 1
    assert len(queries) <= most, queries


@pytest.mark.parametrize(("who", "url", "most"), [
    ("consultant", "dashboard", 5), ("no_membership", "dashboard", 6), ("consultant", "cases:case_list", 8),
])
def test_the_gate_and_the_navigation_read_the_live_grants_once(org_a, client_as, who, url, most):
    """The gate (the idle limit; for an account of no organization, whether it is kept to the
    portal) and the navigation's "Shares" link ask the same live grants of the person: one read.
    Before: 6, 8 and 9 queries; now 5, 6 and 8."""
    status, queries = _reads(client_as(_people(org_a)[who]), reverse(url))
    assert status == 200
    assert len(queries) <= most, queries


@pytest.mark.parametrize(("who", "url", "most"), [
    ("clinician", "cases:case_list", 10), ("consultant", "cases:case_list", 11), ("no_membership", "dashboard", 9),
])
def test_the_idle_limit_past_a_minute_reads_nothing_twice(org_a, client_as, who, url, most):
    """Past a minute without activity the gate reads the idle limit before the view (the
    memberships' and the live grants' organizations' limits), and writes the session: the page
    and its navigation read neither again. Before: 10, 12 and 11 queries; now 10, 11 and 9."""
    status, queries = _reads(client_as(_people(org_a)[who]), reverse(url), idle=90)
    assert status == 200
    assert _membership_reads(queries) == 1
    assert len(queries) <= most, queries


def test_what_the_request_read_once_is_read_again_after_it_writes(org_a, clinician_a):
    """The memberships and the live grants kept for the request (``policy.request_memo``) are
    read again once the request writes: a share made, a membership ended in it are seen by what
    it asks next."""
    from apps.organizations.models import Membership
    from apps.sharing import policy

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    with policy.request_memo(), CaptureQueriesContext(connection) as ctx:
        assert policy.live_grant_use_cases(consultant) == frozenset()
        assert policy._active_roles(consultant) == {org_a.pk: Role.EXTERNAL_CONSULTANT}
        reads = len(ctx.captured_queries)
        assert policy.live_grant_use_cases(consultant) == frozenset()  # kept: no query
        assert policy._active_roles(consultant) == {org_a.pk: Role.EXTERNAL_CONSULTANT}
        assert len(ctx.captured_queries) == reads
        sharing.share_create(case=case, by=clinician_a, use_case=UseCase.SECOND_OPINION,
                             recipient_kind=RecipientKind.USER, grantee=consultant)
        assert policy.live_grant_use_cases(consultant) == {UseCase.SECOND_OPINION}
        assert policy.live_grant_idle_minutes(consultant) == {org_a.pk: org_a.external_idle_minutes}
        Membership.objects.filter(user=consultant).update(is_active=False)
        assert policy._active_roles(consultant) == {}


def test_the_shares_link_asks_someone_who_made_no_share_one_plain_question(org_a, client_as):
    """Whether the "Shares" page has anything for a consultant (``policy.has_shares_page``): the
    shares they made are looked up by a plain read of their organizations; the filter of the
    live grants that show them those shares' cases (its costliest part to build and compile) is
    asked only of shares they made. Before: one query that built and compiled it each page."""
    status, queries = _reads(client_as(_people(org_a)["consultant"]), "/no-such-page/")
    made = [sql for sql in queries if '"sharing_grant"."created_by_id" =' in sql]
    assert status == 404 and len(made) == 1
    assert "EXISTS" not in made[0].upper() and '"cases_case"' not in made[0], made


def test_the_shares_link_still_counts_shares_made_under_a_reshared_share(org_a, clinician_a, client_as):
    """A consultant who reshared a case shared with them (no role that shares) is offered the
    page while the share they reshare under lasts, and no longer once it is revoked."""
    from apps.sharing import policy
    from apps.sharing.models import Grant

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    under = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=clinician_a, **PREVIEW)
    GrantFactory(organization=org_a, case=case, grantee=member(org_a, Role.EXTERNAL_CONSULTANT),
                 created_by=consultant, **PREVIEW)
    assert policy.has_shares_page(consultant)
    Grant.objects.filter(pk=under.pk).update(revoked_at=under.starts_at)
    assert not policy.has_shares_page(consultant)
