"""The grants API's answers to refused input: each rule's error beside the field it is about
(the service's ValidationError code names it), bounded numbers and lists, group addresses that
are refused rather than dropped, and the documented ``?mine`` filter."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing.models import Grant
from tests.factories import GrantFactory, member

pytestmark = pytest.mark.django_db


def _post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def _create(client, case, **body):
    return _post(client, "/api/v1/grants/", {"case": str(case.public_id), **body})


@pytest.mark.parametrize(("body", "field"), [
    ({"use_case": "consultant", "recipient_kind": "user", "recipient_email": "consultant@alpha.example",
      "hours": 99}, "hours"),                                   # past the template's maximum (the service)
    ({"use_case": "consultant", "recipient_kind": "user", "recipient_email": "consultant@alpha.example",
      "hours": 2**70}, "hours"),                                # past any template's (the serializer)
    ({"use_case": "second_opinion", "recipient_kind": "group", "group_emails": ["consultant@alpha.example"]},
     "recipient_kind"),                                         # a recipient the template does not take
    ({"use_case": "consultant", "recipient_kind": "email"}, "recipient_email"),
    ({"use_case": "custom", "recipient_kind": "group", "group_emails": []}, "group_emails"),
    ({"use_case": "custom", "recipient_kind": "group",
      "group_emails": [f"m{i}@alpha.example" for i in range(101)]}, "group_emails"),
    ({"use_case": "consultant", "recipient_kind": "user", "recipient_email": "consultant@alpha.example",
      "second_factor": "passcode", "passcode": "abc"}, "passcode"),
    # no rendition chosen: refused, never stored as a grant with no rendition scope (every rendition)
    ({"use_case": "consultant", "recipient_kind": "user", "recipient_email": "consultant@alpha.example",
      "renditions": []}, "renditions"),
])
def test_a_refused_share_says_which_field(case, owner, consultant, client_as, body, field):
    response = _create(client_as(owner), case, **body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Grant.objects.exists()


def test_group_addresses_without_an_account_are_named_not_dropped(case, owner, consultant, client_as):
    response = _create(client_as(owner), case, use_case="tumor_board", recipient_kind="group", group_name="Board",
                       group_emails=["Consultant@alpha.example", "nobody@nowhere.example"])
    assert response.status_code == 400
    assert response.json() == {"group_emails": ["No active account for: nobody@nowhere.example"]}
    assert not Grant.objects.exists()
    response = _create(client_as(owner), case, use_case="tumor_board", recipient_kind="group", group_name="Board",
                       group_emails=["Consultant@alpha.example"])
    assert response.status_code == 201
    assert list(Grant.objects.get().group_members.all()) == [consultant]


@pytest.mark.parametrize("kind", ["user", "group"])
def test_who_may_not_share_learns_nothing_about_accounts(org_a, case, client_as, kind):
    """The sharing right is asked first: a coordinator gets 403 (recorded), not whether an
    address has an account."""
    coordinator = member(org_a, Role.COORDINATOR)
    response = _create(client_as(coordinator), case, use_case="custom", recipient_kind=kind,
                       recipient_email="nobody@nowhere.example", group_emails=["nobody@nowhere.example"])
    assert response.status_code == 403
    assert "account" not in response.content.decode()
    assert AuditEvent.objects.filter(action="access.denied", details__wanted="share_case").exists()


def test_extend_and_renew_refusals_beside_their_fields(case, owner, consultant, client_as):
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="consultant")
    client = client_as(owner)
    too_late = (grant.starts_at + timedelta(hours=73)).isoformat()
    response = _post(client, f"/api/v1/grants/{grant.public_id}/extend/",
                     {"expires_at": too_late, "reason": "The board moved to next week."})
    assert response.status_code == 400 and "expires_at" in response.json()
    response = _post(client, f"/api/v1/grants/{grant.public_id}/renew/", {"hours": 2**70})
    assert response.status_code == 400 and "hours" in response.json()
    response = _post(client, f"/api/v1/grants/{grant.public_id}/renew/", {"hours": 99})
    assert response.status_code == 400 and "hours" in response.json()
    assert _post(client, f"/api/v1/grants/{grant.public_id}/revoke/", {}).status_code == 200
    response = _post(client, f"/api/v1/grants/{grant.public_id}/renew/", {})
    assert response.status_code == 400 and "detail" in response.json()  # about the grant, no field


def test_mine_filters_only_when_set(org_a, case, owner, consultant, client_as):
    mine = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner)
    GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=member(org_a, Role.CLINICIAN))
    client = client_as(owner)

    def ids(query):
        return {g["id"] for g in client.get(f"/api/v1/grants/{query}").json()["results"]}

    assert ids("?mine=1") == ids("?mine=true") == {str(mine.public_id)}
    assert len(ids("?mine=0")) == len(ids("?mine=false")) == len(ids("")) == 2


def test_mine_is_in_the_schema(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    text = (tmp_path / "schema.yaml").read_text()
    listing = text[text.index("  /api/v1/grants/:"):text.index("  /api/v1/grants/{grant_id}/:")]
    assert "name: mine" in listing


def test_no_rendition_chosen_gives_the_use_cases_own(org_a):
    # the service's word, whatever the caller: an empty choice is the use case's renditions, as
    # when none is given (a grant naming no rendition would allow every one)
    from apps.sharing.services import share_terms

    default = share_terms(organization_id=org_a.pk, use_case="consultant", recipient_kind="user")
    assert default.renditions
    assert share_terms(organization_id=org_a.pk, use_case="consultant", recipient_kind="user",
                       renditions=[]).renditions == default.renditions
