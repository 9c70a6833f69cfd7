"""A link that can no longer be opened (expired, revoked, used up, anonymous links switched off)
tells its holder what to do next, not only why: a telehealth physician holding a dead link had
no way forward on the page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import CaseFactory, OrganizationFactory, StudyFactory, grant_kill, member, open_anonymous_link

pytestmark = pytest.mark.django_db

NEXT_STEP = "ask the person who sent you this link to share them again"


@pytest.fixture
def anonymous_link():
    org = OrganizationFactory(slug="alpha", mfa_required_roles=[], anonymous_links_enabled=True)
    owner = member(org, Role.CLINICIAN, email="owner@alpha.example")
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner)
    grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS, max_uses=1)
    return org, owner, grant, raw


@pytest.mark.parametrize("how", ["expired", "revoked", "used_up", "anonymous_off"])
def test_a_refused_link_says_what_to_do_next(anonymous_link, how):
    org, owner, grant, raw = anonymous_link
    if how == "used_up":
        assert open_anonymous_link(Client(), raw).status_code == 302
    elif how == "anonymous_off":
        org.anonymous_links_enabled = False
        org.save()
    else:
        grant_kill(grant, user=owner, state=how)
    response = open_anonymous_link(Client(), raw)
    assert response.status_code in (403, 410)
    assert 'data-testid="link-refused"' in response.content.decode()
    assert NEXT_STEP in response.content.decode()


def test_a_link_that_opens_later_says_when_not_to_ask_again(anonymous_link):
    """Not a dead end: a link that opens later keeps its own advice (try again at the time given)."""
    _org, owner, grant, raw = anonymous_link
    grant_kill(grant, user=owner, state="not_started")
    page = open_anonymous_link(Client(), raw).content.decode()
    assert "Try again then." in page and NEXT_STEP not in page


def test_a_study_page_of_a_share_that_ended_tells_the_link_holder_whom_to_ask(anonymous_link):
    """The shared case page was open when the share was withdrawn: its study's View answers 404
    (nothing is shared any more), and the page says why it may be and whom to ask, with no
    dashboard they cannot open."""
    org, owner, grant, raw = anonymous_link
    study = StudyFactory(organization=org, case=grant.case)
    client = Client()
    assert open_anonymous_link(client, raw).status_code == 302
    viewer = reverse("viewer:viewer", kwargs={"study_id": study.public_id})
    assert client.get(viewer).status_code == 200
    grant_kill(grant, user=owner, state="revoked")
    gone = client.get(viewer)
    assert gone.status_code == 404
    page = gone.content.decode()
    assert 'data-testid="not-found-link-holder"' in page and "Back to the dashboard" not in page
    # anyone else keeps the usual page
    stranger = Client().get(viewer)
    assert stranger.status_code in (302, 404)
    if stranger.status_code == 404:
        assert 'data-testid="not-found-link-holder"' not in stranger.content.decode()
