"""The invitation pages at a hospital's size: which cases an inviter may share was decided one
case at a time (about three queries a case: thousands for a clinician of a hospital with 1000+
open cases), even on the invitations page, only to know whether there was one; and the form drew
every shareable case as a checkbox. The form's cases are now a searched list, as the tumor
board's (apps.core.forms.SearchedModelMultipleChoiceField): those ticked, then at most
CHOICES_SHOWN matches of the case list's search; any case the inviter may share is accepted."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Invitation
from apps.cases.models import CaseStatus
from apps.core import forms as core_forms
from apps.organizations.models import Role
from tests.factories import CaseFactory, GrantFactory, member
from tests.pages import queries_and_html

pytestmark = pytest.mark.django_db

SEND = "/org/invitations/new/"
INVITE = {"email": "quorra.outside@consult.example", "role": Role.EXTERNAL_CONSULTANT, "language": "en"}


def _boxes(html: str) -> dict[int, bool]:
    """The case checkboxes on the page: id -> ticked."""
    found = {}
    for tag in re.findall(r'<input type="checkbox" name="cases"[^>]*>', html):
        found[int(re.search(r'value="(\d+)"', tag).group(1))] = " checked" in tag
    return found


def _found(html: str) -> str:
    match = re.search(r'id="id_cases_found"[^>]*>(.*?)</p>', html, re.S)
    return " ".join(match.group(1).split()) if match else ""


@pytest.fixture
def few_shown(monkeypatch):
    monkeypatch.setattr(core_forms, "CHOICES_SHOWN", 5)


def test_the_invitation_pages_cost_the_same_queries_for_3_open_cases_as_for_300(org_a, clinician_a,
                                                                              verified_client):
    client = verified_client(clinician_a)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    consultant_client = verified_client(consultant)
    counts = {}
    for n in (3, 300):
        while (made := org_a.cases.count()) < n:
            CaseFactory.create_batch(n - made, organization=org_a)
        for case in org_a.cases.all()[:n]:  # a consultant who may reshare each of them
            GrantFactory(organization=org_a, case=case, grantee=consultant, permissions=["view", "reshare"])
        counts[n] = [queries_and_html(c, reverse(name))[0] for c in (client, consultant_client)
                     for name in ("accounts:invitation_list", "accounts:invitation_send")]
    assert counts[3] == counts[300], counts


def test_the_form_draws_at_most_50_of_300_open_cases_and_says_how_many_more(org_a, clinician_a, verified_client):
    CaseFactory.create_batch(300, organization=org_a)
    CaseFactory(organization=org_a, title="A closed Quarnstedt case", status=CaseStatus.CLOSED)
    _n, html = queries_and_html(verified_client(clinician_a), SEND)
    assert len(_boxes(html)) == core_forms.CHOICES_SHOWN == 50
    assert _found(html) == "Showing 50 of 300; search to find the others."
    assert "Quarnstedt" not in html
    assert 'name="cases_q"' in html and 'name="search_choices"' in html


def test_a_case_beyond_those_drawn_is_found_by_its_title_ticked_and_invited_to(org_a, clinician_a, verified_client,
                                                                             few_shown):
    CaseFactory.create_batch(12, organization=org_a, title="Chest CT")
    wanted = CaseFactory(organization=org_a, title="Xanthelasma Vorbeck review")
    client = verified_client(clinician_a)
    first = client.get(SEND).content.decode()
    assert wanted.pk not in _boxes(first) and "Vorbeck" not in first
    # the Search button draws the form again with the matches, what was typed kept; nothing sent
    searched = client.post(SEND, {**INVITE, "cases_q": "vorbeck", "search_choices": "cases"})
    assert searched.status_code == 200
    html = searched.content.decode()
    assert _boxes(html) == {wanted.pk: False}
    assert _found(html) == "1 choice matches the search."
    assert 'value="quorra.outside@consult.example"' in html and 'value="vorbeck"' in html
    assert not Invitation.objects.exists() and 'class="errors"' not in html
    # as the page's script asks while the text is typed
    body = client.get(reverse("accounts:invitation_choices"), {"list": "cases", "q": "VORBECK"}).json()
    assert body["choices"] == [{"value": str(wanted.pk), "label": "Xanthelasma Vorbeck review"}]
    assert (body["shown"], body["total"], body["status"]) == (1, 1, "1 choice matches the search.")
    # ticked, it stays whatever is searched next
    html = client.post(SEND, {**INVITE, "cases": [wanted.pk], "cases_q": "nothing like it",
                              "search_choices": "cases"}).content.decode()
    assert _boxes(html) == {wanted.pk: True}
    sent = client.post(SEND, {**INVITE, "cases": [wanted.pk], "cases_q": "vorbeck"})
    assert sent.status_code == 302, sent.content.decode()[:2000]
    assert list(Invitation.objects.get().cases.all()) == [wanted]


def test_any_case_the_inviter_may_share_is_accepted_and_no_other(org_a, org_b, clinician_a, verified_client,
                                                                 few_shown):
    CaseFactory.create_batch(12, organization=org_a, title="Chest CT")
    undrawn = CaseFactory(organization=org_a, title="Zwieback Ulnar follow-up")  # never searched for
    closed = CaseFactory(organization=org_a, title="Closed Quimby case", status=CaseStatus.CLOSED)
    theirs = CaseFactory(organization=org_b, title="Their Quimby case")
    client = verified_client(clinician_a)
    for refused in (closed, theirs):
        response = client.post(SEND, {**INVITE, "cases": [undrawn.pk, refused.pk]})
        assert response.status_code == 400, refused
        html = response.content.decode()
        assert "Select a valid choice" in html and refused.title not in html
    assert not Invitation.objects.exists()
    # searched for or ticked by id, a case not shareable is never drawn
    html = client.post(SEND, {**INVITE, "cases": [closed.pk, theirs.pk], "cases_q": "quimby",
                              "search_choices": "cases"}).content.decode()
    assert _boxes(html) == {} and "Quimby" not in html
    answer = client.get(reverse("accounts:invitation_choices"),
                        {"list": "cases", "q": "quimby", "ticked": [closed.pk, theirs.pk]}).json()
    assert answer["choices"] == [] and answer["total"] == 0
    assert client.post(SEND, {**INVITE, "cases": [undrawn.pk]}).status_code == 302
    assert list(Invitation.objects.get().cases.all()) == [undrawn]


def test_a_consultant_invites_to_the_cases_a_grant_lets_them_reshare_only(org_a, verified_client, few_shown):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    reshare = CaseFactory(organization=org_a, title="Yttrium Quellwater reshare")
    view_only = CaseFactory(organization=org_a, title="Yttrium Quellwater view only")
    CaseFactory(organization=org_a, title="Yttrium Quellwater not shared")
    GrantFactory(organization=org_a, case=reshare, grantee=consultant, permissions=["view", "reshare"])
    GrantFactory(organization=org_a, case=view_only, grantee=consultant, permissions=["view"])
    client = verified_client(consultant)
    assert client.get(reverse("accounts:invitation_list")).status_code == 200
    html = client.get(SEND).content.decode()
    assert _boxes(html) == {reshare.pk: False}
    answer = client.get(reverse("accounts:invitation_choices"), {"list": "cases", "q": "quellwater"}).json()
    assert [c["label"] for c in answer["choices"]] == ["Yttrium Quellwater reshare"]
    refused = client.post(SEND, {**INVITE, "cases": [view_only.pk]})
    assert refused.status_code == 400 and not Invitation.objects.exists()
    assert client.post(SEND, {**INVITE, "cases": [reshare.pk]}).status_code == 302


def test_the_choices_endpoint_answers_whoever_may_send_invitations_only(org_a, org_b, clinician_a, admin_a,
                                                                      client_as, settings):
    settings.LIGHTBOX_MFA_ENFORCED = False  # about who is answered, not the second factor
    CaseFactory(organization=org_a, title="Ours Wexcombe")
    url = reverse("accounts:invitation_choices")
    assert client_as(clinician_a).get(url, {"list": "cases", "q": "wexcombe"}).json()["total"] == 1
    # an org admin invites members but shares no case: nothing to offer
    assert client_as(admin_a).get(url, {"list": "cases", "q": "wexcombe"}).json()["choices"] == []
    # a consultant without a resharing grant may not invite at all
    assert client_as(member(org_a, Role.EXTERNAL_CONSULTANT)).get(url, {"list": "cases"}).status_code == 403
    CaseFactory(organization=org_b, title="Theirs Kettleby")
    theirs = client_as(member(org_b, Role.CLINICIAN))
    assert theirs.get(url, {"list": "cases", "q": "wexcombe"}).json()["total"] == 0  # their own organization's
    assert theirs.get(url, {"list": "cases", "q": "kettleby"}).json()["total"] == 1
    assert client_as(clinician_a).get(url, {"list": "email"}).status_code == 404
    assert client_as(clinician_a).get(url).status_code == 404
    assert Client().get(url, {"list": "cases"}).status_code == 302  # signed out: to the sign-in page


def _inviter(who: str, org_a):
    """A clinician (shares every case by their role), an org admin (invites members, shares no
    case) or a consultant holding a grant that lets them reshare a case."""
    if who == "consultant":
        consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
        GrantFactory(organization=org_a, case=CaseFactory(organization=org_a, title="Chest CT"), grantee=consultant,
                     permissions=["view", "reshare"])
        return consultant
    return member(org_a, Role.CLINICIAN if who == "clinician" else Role.ORG_ADMIN)


@pytest.mark.parametrize("who", ["clinician", "org_admin", "consultant"])
@pytest.mark.parametrize("url", ["accounts:invitation_list", "accounts:invitation_choices"])
def test_the_invitations_and_their_case_search_read_the_users_memberships_once(org_a, verified_client, who, url):
    """Which cases the user may invite to, whether they may invite members, and whether they may
    find a case by who the patient is are decided on the request's memberships and the user's
    grants (``policy.request_facts``): each read the memberships three times more."""
    from tests.pages import assert_read_once, page_queries

    CaseFactory(organization=org_a, title="Chest MR")
    got, queries = page_queries(verified_client(_inviter(who, org_a)),
                                reverse(url) + ("?list=cases&q=chest" if "choices" in url else ""))
    assert got == 200
    assert_read_once(queries, reader=who == "consultant")


def test_a_revoked_resharing_grant_is_refused_at_the_next_invitation_search(org_a, clinician_a, verified_client):
    from apps.sharing import services as sharing

    consultant = _inviter("consultant", org_a)
    client = verified_client(consultant)
    url = reverse("accounts:invitation_choices")
    assert [c["label"] for c in client.get(url, {"list": "cases", "q": "chest"}).json()["choices"]] == ["Chest CT"]
    sharing.grants_revoke(grants=list(consultant.grants.all()), by=clinician_a, reason="test")
    assert client.get(url, {"list": "cases", "q": "chest"}).status_code == 403
    assert client.get(reverse("accounts:invitation_list")).status_code == 403
