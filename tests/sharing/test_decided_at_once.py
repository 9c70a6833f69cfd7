"""Pages that ask the policy several questions ask them at once (``policy.can_actions``): the
navigation's links, the case page's and the study page's buttons. Each role still gets the links
and buttons its role gives, and the user's memberships are read once for all of a page's
questions about one object, not once a question (they were: 5 reads for the header, 12 for a
consultant's study page). The navigation, the study page and the case page read none of their
own: they decide on the memberships the request read once (``request.my_memberships``,
``policy.request_facts``; tests/imaging/test_page_queries.py and tests/cases/test_page_reads.py
count every reading of the table)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import policy
from tests.factories import CaseFactory, GrantFactory, StudyFactory, member

pytestmark = pytest.mark.django_db

NAV = {"Upload": "imaging:upload", "Members": "organizations:members", "Settings": "organizations:settings",
       "Audit": "audit:event_list"}


@pytest.fixture
def memberships_read(monkeypatch):
    """The number of times the policy has read a user's active memberships itself."""
    reads = []
    real = policy._active_roles
    monkeypatch.setattr(policy, "_active_roles", lambda user: reads.append(user.pk) or real(user))
    return reads


def _get(client, url: str, reads: list) -> tuple[str, int]:
    client.get(url)  # warm: the session and the language settle
    reads.clear()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode(), len(reads)


def _nav_links(html: str) -> set[str]:
    nav = re.search(r'<nav class="main-nav".*?</nav>', html, re.S).group(0)
    return {label for label, name in NAV.items() if f'href="{reverse(name)}"' in nav}


@pytest.mark.parametrize(("role", "links"), [
    (Role.CLINICIAN, {"Upload"}),
    (Role.RADIOLOGIST, {"Upload"}),
    (Role.ORG_ADMIN, {"Members", "Settings", "Audit"}),
    (Role.EXTERNAL_CONSULTANT, set()),
])
def test_the_navigation_shows_each_roles_links_from_one_read_of_its_memberships(
        org_a, client_as, memberships_read, role, links):
    html, reads = _get(client_as(member(org_a, role)), reverse("sharing:shared_with_me"), memberships_read)
    assert _nav_links(html) == links
    assert reads == 0  # the page itself asks nothing of the policy; the navigation, the request's


@pytest.fixture
def shared_study(org_a):
    sharer, consultant = member(org_a, Role.CLINICIAN), member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a, created_by=sharer, responsible_clinician=sharer)
    study = StudyFactory(organization=org_a, case=case)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=sharer,
                         permissions=["view", "download_preview"], renditions=["preview"])
    grant.studies.set([study])
    return sharer, consultant, study


def test_the_case_page_decides_its_buttons_from_one_read(shared_study, client_as, memberships_read):
    sharer, consultant, study = shared_study
    url = reverse("cases:case_detail", args=[study.case.public_id])
    html, reads = _get(client_as(consultant), url, memberships_read)
    # the page and the navigation decide on the request's memberships (tests/cases/test_page_reads.py
    # counts every reading of the table)
    assert reads == 0
    assert 'data-testid="share-case"' not in html and 'data-testid="upload-to-case"' not in html
    html, reads = _get(client_as(sharer), url, memberships_read)
    assert reads == 0
    assert 'data-testid="share-case"' in html and 'data-testid="upload-to-case"' in html


def test_the_study_page_decides_its_buttons_from_one_read(shared_study, client_as, memberships_read):
    sharer, consultant, study = shared_study
    url = reverse("imaging:study_detail", args=[study.public_id])
    html, reads = _get(client_as(consultant), url, memberships_read)
    # the navigation, the page's buttons, its ingest reports (an upload right in the organization)
    # and the renditions its downloads offer: all on the request's memberships (they read 4 times)
    assert reads == 0
    assert 'data-testid="open-viewer"' in html  # the grant lets the consultant view
    for button in ("share-study", "deid-exports", "delete-study"):
        assert f'data-testid="{button}"' not in html
    html, reads = _get(client_as(sharer), url, memberships_read)
    assert reads == 0
    for button in ("open-viewer", "share-study"):
        assert f'data-testid="{button}"' in html


def test_a_closed_case_offers_no_share_button_on_either_page(shared_study, client_as):
    sharer, _consultant, study = shared_study
    study.case.status = "closed"
    study.case.save(update_fields=["status"])
    client = client_as(sharer)
    case_page = client.get(reverse("cases:case_detail", args=[study.case.public_id])).content.decode()
    study_page = client.get(reverse("imaging:study_detail", args=[study.public_id])).content.decode()
    assert 'data-testid="share-case"' not in case_page and 'data-testid="share-study"' not in study_page
    assert 'data-testid="open-viewer"' in study_page  # the page itself still shown


def test_a_case_page_refused_is_refused_and_recorded_once(shared_study, client_as):
    from apps.audit.models import AuditEvent

    _sharer, _consultant, study = shared_study
    outsider = member(study.organization, Role.EXTERNAL_CONSULTANT)  # a member, with no grant
    response = client_as(outsider).get(reverse("cases:case_detail", args=[study.case.public_id]))
    assert response.status_code == 404 and study.case.title.encode() not in response.content  # as to outsiders
    assert AuditEvent.objects.filter(action="access.denied", actor=outsider).count() == 1
