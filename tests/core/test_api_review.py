"""The REST API as a hospital's security officer reviews it, endpoint by endpoint, table-driven.

Actors: a member whose role allows the operation, members of the same organization with lesser
roles, a member of another organization, and an anonymous client. Expected: 404 (never 403) for
another organization's rows, the same body as for an id that names nothing; 403 for a lesser
role; 400 with the error beside its field for bad input; 405/415 for a wrong method or content
type; never a 500. Every change to who may see what leaves an audit event.

Findings that belong to apps this review may not change (apps/sharing, apps/imaging) are
``xfail(strict=True)`` with the finding's number in /tmp/api_review.md: each turns into a failure
the day it is fixed, so its marker is removed with the fix."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing.models import Grant, ShareLink
from tests.factories import CaseFactory, GrantFactory, member

pytestmark = pytest.mark.django_db

ACTORS = {  # name -> (organization, role); None: anonymous
    "owner": ("a", Role.CLINICIAN),          # created the case: shares it, manages its grants
    "radiologist": ("a", Role.RADIOLOGIST),
    "coordinator": ("a", Role.COORDINATOR),  # manages grants (revoke, extend), does not share or renew
    "org_admin": ("a", Role.ORG_ADMIN),      # manages grants (revoke, extend), does not share or renew
    "consultant": ("a", Role.EXTERNAL_CONSULTANT),  # the grantee: sees nothing organization-wide
    "patient": ("a", Role.PATIENT),          # kept to the patient portal by the access gate
    "other_org": ("b", Role.ORG_ADMIN),
    "other_org_clinician": ("b", Role.CLINICIAN),
    "anonymous": None,
}


@pytest.fixture
def world(org_a, org_b):
    orgs = {"a": org_a, "b": org_b}
    users = {name: None if spec is None else member(orgs[spec[0]], spec[1], email=f"{name}@{spec[0]}.example")
             for name, spec in ACTORS.items()}
    case = CaseFactory(organization=org_a, created_by=users["owner"], responsible_clinician=users["owner"])
    grant = GrantFactory(organization=org_a, case=case, grantee=users["consultant"], created_by=users["owner"],
                         use_case="consultant")
    case_b = CaseFactory(organization=org_b)
    grant_b = GrantFactory(organization=org_b, case=case_b, use_case="consultant")
    return {"users": users, "org_a": org_a, "org_b": org_b, "case": case, "grant": grant, "case_b": case_b,
            "grant_b": grant_b}


def _call(client, method: str, url: str, body=None):
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


def _create_body(world, **extra):
    return {"case": str(world["case"].public_id), "use_case": "consultant", "recipient_kind": "user",
            "recipient_email": "consultant@a.example", **extra}


LATER = "2030-01-01T00:00:00Z"  # replaced by a time inside the template's maximum in the test

# (endpoint, method, url template, body) -> expected status per actor
ENDPOINTS = {
    "organization list": ("get", "/api/v1/organizations/", None),
    "own organization": ("get", "/api/v1/organizations/{org_a}/", None),
    "grant list": ("get", "/api/v1/grants/", None),
    "grants received": ("get", "/api/v1/grants/received/", None),
    "grant detail": ("get", "/api/v1/grants/{grant}/", None),
    "grant create": ("post", "/api/v1/grants/", "create"),
    "grant extend": ("post", "/api/v1/grants/{grant}/extend/", "extend"),
    "grant renew": ("post", "/api/v1/grants/{grant}/renew/", {}),
    "grant revoke": ("post", "/api/v1/grants/{grant}/revoke/", None),
}
#                     owner radiol coord  admin  consul patient other  other_c anon
EXPECTED = {
    "organization list": (200, 200, 200, 200, 200, 403, 200, 200, 403),
    "own organization":  (200, 200, 200, 200, 200, 403, 404, 404, 403),
    "grant list":        (200, 200, 200, 200, 200, 403, 200, 200, 403),
    "grants received":   (200, 200, 200, 200, 200, 403, 200, 200, 403),
    "grant detail":      (200, 200, 200, 200, 404, 403, 404, 404, 403),
    "grant create":      (201, 201, 403, 403, 403, 403, 404, 404, 403),
    "grant extend":      (200, 200, 200, 200, 404, 403, 404, 404, 403),
    "grant renew":       (201, 201, 403, 403, 404, 403, 404, 404, 403),  # renewing is sharing (F3)
    "grant revoke":      (200, 200, 200, 200, 404, 403, 404, 404, 403),
}
MATRIX = [(endpoint, actor, status) for endpoint, row in EXPECTED.items()
          for actor, status in zip(ACTORS, row, strict=True)]


def _url(template: str, world) -> str:
    return template.format(org_a=world["org_a"].public_id, grant=world["grant"].public_id)


@pytest.mark.parametrize(("endpoint", "actor", "expected"), MATRIX, ids=[f"{e}-{a}" for e, a, _ in MATRIX])
def test_access_matrix(world, client_as, endpoint, actor, expected):
    method, template, body = ENDPOINTS[endpoint]
    if body == "create":
        body = _create_body(world)
    elif body == "extend":
        body = {"expires_at": (world["grant"].expires_at.replace(microsecond=0)
                               + timedelta(hours=1)).isoformat(),
                "reason": "The board moved to next week."}
    before = Grant.objects.count()
    response = _call(client_as(world["users"][actor]), method, _url(template, world), body)
    assert response.status_code == expected, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    if expected >= 400:
        assert Grant.objects.count() == before  # a refusal creates nothing
        assert world["grant"].__class__.objects.get(pk=world["grant"].pk).revoked_at is None


def test_lists_never_show_another_organizations_rows(world, client_as):
    for actor in ("owner", "other_org"):
        client = client_as(world["users"][actor])
        mine, theirs = (world["grant"], world["grant_b"]) if actor == "owner" else (world["grant_b"], world["grant"])
        ids = [g["id"] for g in client.get("/api/v1/grants/").json()["results"]]
        assert str(mine.public_id) in ids and str(theirs.public_id) not in ids
        orgs = [o["id"] for o in client.get("/api/v1/organizations/").json()["results"]]
        assert orgs == [str((world["org_a"] if actor == "owner" else world["org_b"]).public_id)]


# --- another organization's ids: the same 404 as an id of nothing, in the reader's language -----

OTHER_TENANT_URLS = [
    ("get", "/api/v1/organizations/{id}/", "org"),
    ("get", "/api/v1/grants/{id}/", "grant"),
    ("post", "/api/v1/grants/{id}/revoke/", "grant"),
    ("post", "/api/v1/grants/{id}/renew/", "grant"),
    ("post", "/api/v1/grants/{id}/extend/", "grant"),
]


@pytest.mark.parametrize(("method", "template", "kind"), OTHER_TENANT_URLS, ids=[u[1] for u in OTHER_TENANT_URLS])
@pytest.mark.parametrize("language", ["en", "es"])
def test_another_tenants_id_is_the_same_404_as_no_id(world, client_as, method, template, kind, language):
    """The 404 body was "No Grant matches the given query." (English in every language, naming
    the model) for a well-formed id, and "Not found." for a malformed one."""
    client = client_as(world["users"]["owner"])
    theirs = world["org_b" if kind == "org" else "grant_b"].public_id
    answers = [getattr(client, method)(template.format(id=i), HTTP_ACCEPT_LANGUAGE=language)
               for i in (theirs, uuid.uuid4(), "not-a-uuid", "12", "%00")]
    assert [a.status_code for a in answers] == [404] * 5
    bodies = {json.dumps(a.json(), sort_keys=True) for a in answers}
    assert bodies == {json.dumps({"detail": "Not found." if language == "en" else "No encontrado."})}
    assert world["grant_b"].__class__.objects.get(pk=world["grant_b"].pk).revoked_at is None


def test_creating_from_another_tenants_case_is_404_as_an_unknown_case(world, client_as):
    client = client_as(world["users"]["owner"])
    answers = [client.post("/api/v1/grants/", _create_body(world, case=str(c)), content_type="application/json")
               for c in (world["case_b"].public_id, uuid.uuid4())]
    assert [a.status_code for a in answers] == [404, 404] and answers[0].json() == answers[1].json()
    assert Grant.objects.count() == 2


# --- bad input: a 400 beside the field, a 405 or a 415, never a 500 ---------------------------

BAD_CREATE = [  # (label, body or raw text, content type, status, field in the error)
    ("malformed JSON", "{not json", "application/json", 400, "detail"),
    ("JSON string", '"a string"', "application/json", 400, "non_field_errors"),
    ("JSON list", "[1, 2]", "application/json", 400, "non_field_errors"),
    ("JSON null", "null", "application/json", 400, "non_field_errors"),
    ("empty body", "", "application/json", 400, "case"),
    ("text/plain", "case=x", "text/plain", 415, "detail"),
    ("XML", "<grant/>", "application/xml", 415, "detail"),
    ("hours not a number", {"hours": "abc"}, None, 400, "hours"),
    ("hours a float", {"hours": 1e308}, None, 400, "hours"),
    ("hours negative", {"hours": -1}, None, 400, "hours"),
    ("use_case a list", {"use_case": ["x"]}, None, 400, "use_case"),
    ("use_case unknown", {"use_case": "\u0000"}, None, 400, "use_case"),
    ("email a number", {"recipient_email": 5}, None, 400, "recipient_email"),
    ("email with NUL", {"recipient_email": "a\u0000@b.org", "recipient_kind": "email"}, None, 400,
     "recipient_email"),
    ("unknown recipient", {"recipient_email": "nobody@nowhere.example"}, None, 400, "recipient_email"),
    ("group_emails a string", {"group_emails": "a@b.org"}, None, 400, "group_emails"),
    ("renditions a string", {"renditions": "original"}, None, 400, "renditions"),
    ("renditions unknown", {"renditions": ["bogus"]}, None, 400, "renditions"),
    ("group name too long", {"group_name": "x" * 100_000}, None, 400, "group_name"),
    ("second factor unknown", {"second_factor": "bogus"}, None, 400, "second_factor"),
    ("not_before not a time", {"not_before": "yesterday"}, None, 400, "not_before"),
    ("not_before a number", {"not_before": 12345}, None, 400, "not_before"),
    ("not_before year 1", {"not_before": "0001-01-01T00:00:00Z"}, None, 400, "not_before"),
    ("download_limit huge", {"download_limit": 2**63}, None, 400, "download_limit"),
    ("case missing", {"case": None}, None, 400, "case"),
    ("case not a UUID", {"case": "not-a-uuid"}, None, 400, "case"),
]


@pytest.mark.parametrize(("label", "body", "content_type", "status", "field"), BAD_CREATE,
                         ids=[b[0] for b in BAD_CREATE])
def test_create_refuses_bad_input(world, client_as, label, body, content_type, status, field):
    client = client_as(world["users"]["owner"])
    if isinstance(body, dict):
        data = {k: v for k, v in _create_body(world, **body).items() if v is not None}
        response = client.post("/api/v1/grants/", json.dumps(data), content_type="application/json")
    else:
        response = client.post("/api/v1/grants/", body, content_type=content_type)
    assert response.status_code == status, response.content[:300]
    assert field in response.json()
    assert Grant.objects.count() == 2


BAD_ACTIONS = [  # (action, raw or dict body, status, field)
    ("extend", {"expires_at": "x", "reason": "The board moved to next week."}, 400, "expires_at"),
    ("extend", {"expires_at": None, "reason": None}, 400, "reason"),
    ("extend", {"reason": "The board moved to next week."}, 400, "expires_at"),
    ("extend", {"expires_at": LATER, "reason": "short"}, 400, "reason"),
    ("extend", {"expires_at": LATER, "reason": "r\u0000" * 20}, 400, "reason"),
    ("extend", {"expires_at": "9999-12-31T23:59:59Z", "reason": "The board moved to next week."}, 400,
     "expires_at"),
    ("extend", "{bad", 400, "detail"),
    ("renew", {"hours": -1}, 400, "hours"),
    ("renew", {"hours": "many"}, 400, "hours"),
    ("renew", "[]", 400, "non_field_errors"),
]


@pytest.mark.parametrize(("action", "body", "status", "field"), BAD_ACTIONS,
                         ids=[f"{a}-{json.dumps(b)[:40]}" for a, b, _, _ in BAD_ACTIONS])
def test_grant_actions_refuse_bad_input(world, client_as, action, body, status, field):
    url = f"/api/v1/grants/{world['grant'].public_id}/{action}/"
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client_as(world["users"]["owner"]).post(url, raw, content_type="application/json")
    assert response.status_code == status, response.content[:300]
    assert field in response.json()
    assert Grant.objects.count() == 2 and not world["grant"].extensions.exists()


METHODS = [
    ("put", "/api/v1/grants/{grant}/"), ("patch", "/api/v1/grants/{grant}/"), ("delete", "/api/v1/grants/{grant}/"),
    ("get", "/api/v1/grants/{grant}/revoke/"), ("get", "/api/v1/grants/{grant}/renew/"),
    ("put", "/api/v1/grants/"), ("delete", "/api/v1/grants/received/"),
    ("post", "/api/v1/organizations/"), ("delete", "/api/v1/organizations/{org_a}/"),
    ("patch", "/api/v1/organizations/{org_a}/"),
]


@pytest.mark.parametrize(("method", "template"), METHODS, ids=[f"{m} {t}" for m, t in METHODS])
def test_unsupported_methods_are_405_with_allow(world, client_as, method, template):
    response = getattr(client_as(world["users"]["owner"]), method)(_url(template, world))
    assert response.status_code == 405
    assert response["Allow"] and method.upper() not in response["Allow"]
    assert Grant.objects.filter(revoked_at__isnull=False).count() == 0


@pytest.mark.parametrize("query", ["page=abc", "page=-1", "page=0", "page=" + "9" * 40, "mine=%00", "format=xml"])
def test_odd_query_strings_are_answered_not_crashed(world, client_as, query):
    response = client_as(world["users"]["owner"]).get(f"/api/v1/grants/?{query}")
    assert response.status_code in (200, 404)
    assert response.status_code == 200 or response.json() in ({"detail": "Invalid page."}, {"detail": "Not found."})


def test_the_api_answers_json_only_never_drfs_html_pages(world, client_as):
    """DRF's browsable API (its own HTML templates and forms) is off unless DJANGO_DEBUG is on."""
    client = client_as(world["users"]["owner"])
    response = client.get("/api/v1/grants/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "results" in response.json()
    assert client.get("/api/v1/grants/?format=api").status_code == 404


# --- every change to who may see what is audited --------------------------------------------

def test_every_grant_change_through_the_api_is_audited(world, client_as):
    users, grant = world["users"], world["grant"]
    client = client_as(users["owner"])
    start = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    created = client.post("/api/v1/grants/", _create_body(world), content_type="application/json").json()
    later = (grant.expires_at.replace(microsecond=0) + timedelta(hours=1)).isoformat()
    assert client.post(f"/api/v1/grants/{grant.public_id}/extend/", {"expires_at": later,
                       "reason": "The board moved to next week."}, content_type="application/json").status_code == 200
    renewed = client.post(f"/api/v1/grants/{grant.public_id}/renew/", {}, content_type="application/json").json()
    assert client.post(f"/api/v1/grants/{created['id']}/revoke/").status_code == 200
    trail = list(AuditEvent.objects.filter(pk__gt=start).order_by("pk").values_list("action", "target_id"))
    assert ("grant.created", created["id"]) in trail
    assert ("grant.extended", str(grant.public_id)) in trail
    assert ("grant.created", renewed["id"]) in trail and ("grant.revoked", str(grant.public_id)) in trail
    assert ("grant.revoked", created["id"]) in trail
    # a refusal by role is recorded too
    start = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    assert client_as(users["coordinator"]).post("/api/v1/grants/", _create_body(world),
                                                content_type="application/json").status_code == 403
    assert AuditEvent.objects.filter(pk__gt=start, action="access.denied", outcome="denied").exists()


# --- the OpenAPI schema ---------------------------------------------------------------------

def test_openapi_schema_generates_without_warnings_or_errors(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/grants/{grant_id}/renew/" in (tmp_path / "schema.yaml").read_text()


def test_openapi_schema_names_every_state_of_a_grant(tmp_path):
    """A grant's ``state`` was a bare string in the schema: a tumor board's ended grants changed
    from "revoked" to "ended_with_board" (3fae494) with nothing for a client to read it from."""
    import yaml

    from apps.sharing.models import GrantState

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = yaml.safe_load((tmp_path / "schema.yaml").read_text())
    state = schema["components"]["schemas"]["GrantOutput"]["properties"]["state"]
    if "$ref" in state:
        state = schema["components"]["schemas"][state["$ref"].rsplit("/", 1)[-1]]
    elif "allOf" in state:
        state = schema["components"]["schemas"][state["allOf"][0]["$ref"].rsplit("/", 1)[-1]]
    assert set(state["enum"]) == set(GrantState.values)


def test_openapi_schema_documents_the_tus_upload_endpoint(tmp_path):
    """The tus endpoint is a plain Django view drf-spectacular does not see: the schema names it
    (apps.imaging.openapi) with its methods, headers and statuses, as the server answers them."""
    import yaml

    from apps.imaging.tus import ROOT_METHODS, UPLOAD_METHODS

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    paths = yaml.safe_load((tmp_path / "schema.yaml").read_text())["paths"]
    root, upload = paths["/api/v1/uploads/"], paths["/api/v1/uploads/{upload_id}/"]
    assert {m.upper() for m in root} == set(ROOT_METHODS.split(", "))
    assert {m.upper() for m in upload} == set(UPLOAD_METHODS.split(", "))
    create, append = root["post"], upload["patch"]
    assert {p["name"] for p in create["parameters"] if p["required"]} >= {"Tus-Resumable", "Upload-Length",
                                                                           "X-CSRFToken"}
    assert "Location" in create["responses"]["201"]["headers"]
    assert create["responses"]["403"]["headers"]["Lightbox-Refusal"]["schema"]["enum"] == [
        "signed_out", "case_closed", "case_forbidden"]
    assert {p["name"] for p in append["parameters"]} >= {"upload_id", "Upload-Offset", "Upload-Checksum"}
    assert set(append["responses"]) == {"204", "400", "403", "404", "409", "410", "412", "413", "415", "423",
                                        "460", "503"}
    assert "application/offset+octet-stream" in append["requestBody"]["content"]
    assert "text/plain" in append["responses"]["409"]["content"]  # tus refusals are text, not the API's JSON
    assert "Upload-Offset" in upload["head"]["responses"]["200"]["headers"]


# --- findings F1-F7 of /tmp/api_review.md (fixed; each was a strict xfail until its fix) ----

def test_a_revoked_grant_cannot_be_renewed_back_to_life(world, client_as):
    client = client_as(world["users"]["owner"])
    grant = world["grant"]
    assert client.post(f"/api/v1/grants/{grant.public_id}/revoke/").status_code == 200
    response = client.post(f"/api/v1/grants/{grant.public_id}/renew/", {}, content_type="application/json")
    assert response.status_code == 400
    assert not Grant.objects.live().filter(case=world["case"]).exists()


def _anonymous_share(world, client_as):
    world["org_a"].anonymous_links_enabled = True
    world["org_a"].save(update_fields=["anonymous_links_enabled"])
    response = client_as(world["users"]["owner"]).post("/api/v1/grants/", {
        "case": str(world["case"].public_id), "use_case": "custom", "recipient_kind": "anonymous",
        "second_factor": "passcode", "passcode": "synthetic-pass", "hours": 12}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_renewing_an_anonymous_link_keeps_its_second_factor_and_cap(world, client_as):
    old = _anonymous_share(world, client_as)
    response = client_as(world["users"]["owner"]).post(f"/api/v1/grants/{old}/renew/", {"hours": 72},
                                                       content_type="application/json")
    assert response.status_code == 201, response.content  # renewed, within the anonymous cap
    new = Grant.objects.get(public_id=response.json()["id"])
    link = ShareLink.objects.get(grant=new)
    old_link = ShareLink.objects.get(grant__public_id=old)
    assert link.second_factor == "passcode" and link.passcode_hash == old_link.passcode_hash != ""
    assert (new.expires_at - new.starts_at).total_seconds() <= 24 * 3600


@pytest.mark.parametrize("actor", ["org_admin", "coordinator"])
def test_a_role_that_may_not_share_gets_no_new_link_by_renewing(world, client_as, actor):
    old = _anonymous_share(world, client_as)
    response = client_as(world["users"][actor]).post(f"/api/v1/grants/{old}/renew/", {},
                                                     content_type="application/json")
    assert response.status_code == 403
    assert "link" not in response.json()


@pytest.mark.parametrize("hours", [99, 2**70])
def test_hours_past_the_template_maximum_are_refused_beside_the_field(world, client_as, hours):
    response = client_as(world["users"]["owner"]).post("/api/v1/grants/", _create_body(world, hours=hours),
                                                       content_type="application/json")
    assert response.status_code == 400 and "hours" in response.json()


def test_a_group_address_with_no_account_is_refused_beside_the_field(world, client_as):
    response = client_as(world["users"]["owner"]).post("/api/v1/grants/", _create_body(
        world, use_case="tumor_board", recipient_kind="group", group_name="Board",
        group_emails=["consultant@a.example", "nobody@nowhere.example"]), content_type="application/json")
    assert response.status_code == 400 and "group_emails" in response.json()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_tus_root_405_names_the_allowed_methods(world, client_as, method):
    response = getattr(client_as(world["users"]["owner"]), method)("/api/v1/uploads/", HTTP_TUS_RESUMABLE="1.0.0")
    assert response.status_code == 405
    assert "POST" in response.get("Allow", "")
