"""The HTTP API's security review, beyond tests/core/test_api_review.py: authentication (session
and CSRF only), the second factor the pages ask for asked by the API too and refused the same way
in the audit trail, unknown fields refused, and every request Django itself refuses under /api/
answered in JSON saying why (never an HTML page, never a 500)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.sharing.models import Grant
from tests.accounts.conftest import enrol, stale_second_factor_client
from tests.core import test_api_review as review

pytestmark = pytest.mark.django_db

world = review.world  # the review's actors, cases and grants (a fixture)
_create_body = review._create_body

REASON = "The board moved to next week."


def _post(client, url: str, body) -> object:
    return client.post(url, body if isinstance(body, str) else json.dumps(body), content_type="application/json")


def _extend_body(world) -> dict:
    return {
        "expires_at": (world["grant"].expires_at.replace(microsecond=0) + timedelta(hours=1)).isoformat(),
        "reason": REASON,
    }


# --- unknown fields -------------------------------------------------------------------------


def test_an_unknown_field_is_refused_beside_it_and_nothing_is_created(world, client_as):
    """DRF dropped it without a word: ``expires_at`` sent to create (or ``hour`` for ``hours``)
    made a share lasting the template's default while its sender believed they had limited it."""
    client = client_as(world["users"]["owner"])
    for extra in ({"expires_at": "2030-01-01T00:00:00Z"}, {"hour": 1}, {"permissions": ["download_original"]}):
        response = _post(client, "/api/v1/grants/", _create_body(world, **extra))
        assert response.status_code == 400, response.content
        assert response.json() == {next(iter(extra)): ["Unknown field."]}
    assert Grant.objects.count() == 2


def test_unknown_fields_are_reported_with_the_other_fields_errors(world, client_as):
    response = _post(
        client_as(world["users"]["owner"]), "/api/v1/grants/", _create_body(world, hours="many", x="\u0000" * 5)
    )
    assert response.status_code == 400
    assert response.json().keys() == {"hours", "x"}


def test_an_unknown_field_of_any_length_is_named_within_bounds(world, client_as):
    response = _post(client_as(world["users"]["owner"]), "/api/v1/grants/", _create_body(world, **{"k" * 5000: 1}))
    assert response.status_code == 400 and list(response.json()) == ["k" * 100]


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("extend", {"expires_at": "2030-01-01T00:00:00Z", "reason": REASON, "notify": True}),
        ("renew", {"hours": 2, "days": 1}),
    ],
)
def test_grant_actions_refuse_unknown_fields(world, client_as, action, body):
    response = _post(client_as(world["users"]["owner"]), f"/api/v1/grants/{world['grant'].public_id}/{action}/", body)
    assert response.status_code == 400
    assert list(response.json().values()) == [["Unknown field."]]
    assert Grant.objects.count() == 2 and not world["grant"].extensions.exists()


def test_a_form_encoded_body_may_carry_its_csrf_token(world, client_as):
    client = client_as(world["users"]["owner"])
    body = {**_create_body(world), "csrfmiddlewaretoken": "x"}
    assert client.post("/api/v1/grants/", body).status_code == 201  # application/x-www-form-urlencoded
    assert client.post("/api/v1/grants/", {**body, "bogus": "1"}).status_code == 400


# --- authentication: a session and its CSRF token, nothing else ------------------------------


def test_a_session_write_needs_its_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["users"]["owner"])
    refused = _post(client, "/api/v1/grants/", _create_body(world))
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.get("/api/v1/grants/").status_code == 200  # reads need none
    client.get(reverse("sharing:my_shares"))
    token = client.cookies["csrftoken"].value
    created = client.post(
        "/api/v1/grants/", json.dumps(_create_body(world)), content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert created.status_code == 201
    assert Grant.objects.count() == 3


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"owner@a.example:password").decode(),
        "Bearer " + "a" * 43,
        "Token " + "a" * 40,
    ],
)
def test_no_credentials_but_a_session_are_taken(world, authorization):
    """No token, basic or bearer authentication is configured: such a header signs no one in."""
    client = Client()
    for method, url in (("get", "/api/v1/grants/"), ("post", "/api/v1/grants/"), ("post", "/api/v1/uploads/")):
        response = getattr(client, method)(url, HTTP_AUTHORIZATION=authorization, HTTP_TUS_RESUMABLE="1.0.0")
        assert response.status_code == 403, (method, url)


# --- the second factor: the API asks for what the pages ask for -----------------------------


@pytest.fixture
def mfa_on(settings):
    settings.LIGHTBOX_MFA_ENFORCED = True


@pytest.mark.usefixtures("mfa_on")
def test_a_signed_in_user_who_has_not_given_their_code_reaches_no_api(world):
    """The access gate stands before the API as before the pages: an authenticator enrolled but
    no code entered in this session (403 ``otp_required``), or a role that needs one and none
    enrolled (``mfa_enrolment_required``)."""
    owner, admin = world["users"]["owner"], world["users"]["org_admin"]
    enrol(owner)
    for user, code in ((owner, "otp_required"), (admin, "mfa_enrolment_required")):
        client = Client()
        client.force_login(user)
        for method, url in (
            ("get", "/api/v1/organizations/"),
            ("get", "/api/v1/grants/"),
            ("post", "/api/v1/grants/"),
            ("post", "/api/v1/uploads/"),
        ):
            response = getattr(client, method)(url, HTTP_TUS_RESUMABLE="1.0.0")
            assert response.status_code == 403 and response.json() == {"detail": code}, (user, url)


STEP_UP = [
    ("create", "/api/v1/grants/"),
    ("extend", "/api/v1/grants/{grant}/extend/"),
    ("renew", "/api/v1/grants/{grant}/renew/"),
]


@pytest.mark.usefixtures("mfa_on")
@pytest.mark.parametrize(("action", "template"), STEP_UP, ids=[a for a, _ in STEP_UP])
def test_giving_access_away_through_the_api_needs_a_recent_code_and_a_refusal_is_recorded(world, action, template):
    """As the share, extend and renew pages (require_recent_otp): 403 ``step_up_required``, and
    the refusal in the audit trail as ``auth.step_up_required``, which the API did not record."""
    owner = world["users"]["owner"]
    client, _device = stale_second_factor_client(owner)
    body = {"create": _create_body(world), "extend": _extend_body(world), "renew": {}}[action]
    url = template.format(grant=world["grant"].public_id)
    before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    response = _post(client, url, body)
    assert response.status_code == 403 and response.json()["detail"] == "step_up_required"
    event = AuditEvent.objects.filter(pk__gt=before, action="auth.step_up_required").get()
    assert event.actor_id == owner.pk and event.outcome == "denied" and event.details["path"] == url
    assert Grant.objects.count() == 2 and not world["grant"].extensions.exists()


@pytest.mark.usefixtures("mfa_on")
def test_the_page_and_the_api_record_a_step_up_refusal_alike(world):
    owner = world["users"]["owner"]
    client, _device = stale_second_factor_client(owner)
    page = client.post(
        reverse("sharing:grant_extend", kwargs={"grant_id": world["grant"].public_id}), _extend_body(world)
    )
    api = _post(client, f"/api/v1/grants/{world['grant'].public_id}/extend/", _extend_body(world))
    assert page.status_code == 302 and api.status_code == 403
    events = AuditEvent.objects.filter(action="auth.step_up_required").order_by("pk")
    assert [(e.actor_id, e.outcome) for e in events] == [(owner.pk, "denied")] * 2


@pytest.mark.usefixtures("mfa_on")
def test_revoking_needs_no_fresh_code_as_on_the_page(world):
    """Taking access away is never held up by a second factor (My shares' Revoke button is not)."""
    client, _device = stale_second_factor_client(world["users"]["owner"])
    assert client.post(f"/api/v1/grants/{world['grant'].public_id}/revoke/").status_code == 200


# --- what Django refuses before the API's views: JSON saying why ------------------------------


def test_a_body_over_the_servers_limit_is_a_400_saying_so(world, client_as, settings):
    """It was Django's bare HTML "Bad Request (400)" page."""
    body = json.dumps(_create_body(world, group_name="x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    response = _post(client_as(world["users"]["owner"]), "/api/v1/grants/", body)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"The request body is larger than this server accepts ({settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes)."
    }
    assert Grant.objects.count() == 2


def test_too_many_form_fields_is_a_400_saying_so(world, client_as, settings):
    body = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client_as(world["users"]["owner"]).post(
        "/api/v1/grants/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"The request has more fields than this server accepts ({settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})."
    }


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("path", ["/api/v1/nothing/", "/api/v1/uploads/not-a-uuid/", "/api/v2/grants/"])
def test_a_path_no_api_route_takes_is_the_apis_json_404(world, client_as, path, language):
    """It was the site's HTML 404 page."""
    response = client_as(world["users"]["owner"]).get(path, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found." if language == "en" else "No encontrado."}
    page = client_as(world["users"]["owner"]).get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


# --- odd values: a 400 beside the field, never a 500 ------------------------------------------

ODD = [
    ("lone surrogate in a text", {"group_name": "\ud800"}, "group_name"),
    (
        "lone surrogate in an address",
        {"recipient_kind": "email", "recipient_email": "a\udfff@b.org"},
        "recipient_email",
    ),
    ("lone surrogate in a passcode", {"passcode": "\ud800" * 8}, "passcode"),
    ("NUL in a passcode", {"passcode": "pass\u0000word"}, "passcode"),
    ("NUL in a group name", {"group_name": "Board\u0000"}, "group_name"),
    ("an integer of 5,000 digits as text", {"hours": "9" * 5000}, "hours"),
    ("a boolean for a number", {"download_limit": True}, "download_limit"),
    ("a fraction for a number", {"max_uses": 1.5}, "max_uses"),
    ("an object for a text", {"group_name": {"a": 1}}, "group_name"),
    ("a very long passcode", {"passcode": "p" * 100_000}, "passcode"),
    (
        "a very long address",
        {"recipient_kind": "email", "recipient_email": "a" * 100_000 + "@b.org"},
        "recipient_email",
    ),
    (
        "too many group addresses",
        {
            "recipient_kind": "group",
            "use_case": "tumor_board",
            "group_name": "Board",
            "group_emails": [f"p{i}@b.org" for i in range(1000)],
        },
        "group_emails",
    ),
]


@pytest.mark.parametrize(("label", "extra", "field"), ODD, ids=[o[0] for o in ODD])
def test_odd_values_are_refused_beside_their_field(world, client_as, label, extra, field):
    response = _post(client_as(world["users"]["owner"]), "/api/v1/grants/", _create_body(world, **extra))
    assert response.status_code == 400, response.content[:300]
    assert field in response.json()
    assert Grant.objects.count() == 2


@pytest.mark.parametrize(
    "raw",
    ['{"hours": ' + "9" * 5000 + "}", '{"hours": NaN}', '{"hours": Infinity}', "\ufeff{}", '{"a": 1', b"\xff\xfe{}"],
)
def test_json_python_cannot_or_should_not_read_is_a_400(world, client_as, raw):
    response = client_as(world["users"]["owner"]).post("/api/v1/grants/", raw, content_type="application/json")
    assert response.status_code == 400 and response.json().keys() == {"detail"}


def test_the_schema_says_which_bodies_refuse_unknown_fields(tmp_path):
    import yaml
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = yaml.safe_load((tmp_path / "schema.yaml").read_text())
    paths, components = schema["paths"], schema["components"]["schemas"]
    bodies = {
        path: paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        for path in ("/api/v1/grants/", "/api/v1/grants/{grant_id}/extend/", "/api/v1/grants/{grant_id}/renew/")
    }
    assert {name: components[name].get("additionalProperties") for name in bodies.values()} == dict.fromkeys(
        bodies.values(), False
    )
    assert "additionalProperties" not in components["GrantOutput"]  # answers may grow


def _api_routes() -> set[str]:
    """Every route under /api/v1/ in the URL configuration, written as the schema writes paths."""
    import re

    from django.urls import URLPattern, URLResolver, get_resolver

    found: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.lstrip("^").startswith("api/v1/"):
                route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)  # router regexes
                route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)  # path converters
                route = route.replace("^", "").replace("$", "").replace("\\.", ".")
                if "{format}" not in route:
                    found.add("/" + route)

    walk(get_resolver().url_patterns, "")
    return found


def test_the_schema_describes_every_api_route_and_no_other(tmp_path):
    import yaml
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    documented = set(yaml.safe_load((tmp_path / "schema.yaml").read_text())["paths"])
    routes = _api_routes()
    assert len(routes) >= 8
    assert documented == routes
