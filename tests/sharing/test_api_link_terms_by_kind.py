"""The grants API takes what the share form takes, by the same rule
(``services.share_link_terms_check``): an anonymous link's terms (use limit, second factor,
passcode) on a share to a person, a group or an invited address are refused beside each field
(400), where the API used to create the share and store them on its link (a passcode on a link
that opens only for its signed-in recipient protects nothing). The form's side:
tests/sharing/test_share_form_fields_by_kind.py."""

from __future__ import annotations

import json

import pytest

from apps.sharing.models import Grant, ShareLink

pytestmark = pytest.mark.django_db

NOT_FOR_NAMED = "Only an anonymous link takes this"


def _create(client, case, **body):
    return client.post("/api/v1/grants/", json.dumps({"case": str(case.public_id), **body}),
                       content_type="application/json")


def _recipient(kind, consultant, radiologist):
    return {
        "user": {"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": consultant.email},
        "email": {"use_case": "second_opinion", "recipient_kind": "email", "recipient_email": consultant.email},
        "group": {"use_case": "tumor_board", "recipient_kind": "group",
                  "group_emails": [consultant.email, radiologist.email], "group_name": "Thoracic board"},
    }[kind]


@pytest.mark.parametrize("switch", ["on", "off"])
@pytest.mark.parametrize("kind", ["user", "email", "group"])
@pytest.mark.parametrize(("given", "refused"), [
    ({"max_uses": 3}, ["max_uses"]),
    ({"second_factor": "passcode", "passcode": "board-2026"}, ["passcode", "second_factor"]),
    ({"passcode": "board-2026"}, ["passcode"]),
    ({"second_factor": "birth_date"}, ["second_factor"]),
])
def test_a_link_term_on_a_share_to_named_people_is_refused_beside_it(client_as, owner, case, consultant, radiologist,
                                                                       switch, kind, given, refused):
    case.organization.anonymous_links_enabled = switch == "on"
    case.organization.save(update_fields=["anonymous_links_enabled"])
    response = _create(client_as(owner), case, **_recipient(kind, consultant, radiologist), **given)
    assert response.status_code == 400, response.content
    errors = response.json()
    assert sorted(errors) == refused
    for name in refused:
        assert NOT_FOR_NAMED in errors[name][0]
    assert not Grant.objects.exists() and not ShareLink.objects.exists()


@pytest.mark.parametrize("kind", ["user", "email", "group"])
def test_the_same_share_without_link_terms_is_created(client_as, owner, case, consultant, radiologist, kind):
    # empty values are no terms (a client sending every field, blank)
    blanks = {"second_factor": "", "passcode": ""}
    response = _create(client_as(owner), case, **_recipient(kind, consultant, radiologist), **blanks)
    assert response.status_code == 201, response.content
    link = ShareLink.objects.get()
    assert (link.anonymous, link.max_uses, link.second_factor, link.passcode_hash) == (False, None, "", "")


def test_an_anonymous_link_still_takes_its_terms(client_as, owner, case, anonymous_on):
    response = _create(client_as(owner), case, use_case="custom", recipient_kind="anonymous", max_uses=3,
                       second_factor="passcode", passcode="board-2026", recipient_email="someone@alpha.example")
    assert response.status_code == 201, response.content
    link = ShareLink.objects.get()
    assert (link.anonymous, link.max_uses, link.second_factor) == (True, 3, "passcode")
    # a person's address on an anonymous link is dropped, as the share form drops it (not refused)
    assert link.grant.grantee_email == "" and link.grant.grantee_id is None


def test_a_passcode_without_the_passcode_factor_is_refused(client_as, owner, case, anonymous_on):
    """As the form refuses it: it would never be asked, and the sharer believed the link protected."""
    response = _create(client_as(owner), case, use_case="custom", recipient_kind="anonymous",
                       passcode="board-2026")
    assert response.status_code == 400
    assert list(response.json()) == ["passcode"]
    assert "only when the second factor is “Passcode”" in response.json()["passcode"][0]
    assert not Grant.objects.exists()


def test_the_refusal_is_in_the_requests_language(client_as, owner, case, consultant, radiologist):
    response = client_as(owner).post(
        "/api/v1/grants/", json.dumps({"case": str(case.public_id), **_recipient("user", consultant, radiologist),
                                       "max_uses": 3}),
        content_type="application/json", HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 400
    message = response.json()["max_uses"][0]
    assert message and NOT_FOR_NAMED not in message
