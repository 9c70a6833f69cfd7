"""The OpenAPI schema documents the errors the API answers with, in the shapes it sends them."""

from __future__ import annotations

import uuid

import jsonschema
import pytest

from apps.organizations.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db


def _schema(client) -> dict:
    return client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def _validate(schema: dict, path: str, method: str, status: int, body) -> None:
    response = schema["paths"][path][method]["responses"][str(status)]
    ref = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    jsonschema.validate(body, schema["components"]["schemas"][ref])


def test_every_operation_documents_its_errors(client_as, admin_a):
    schema = _schema(client_as(admin_a))
    operations = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 9
    for path, method, op in operations:
        if path.startswith("/api/v1/uploads/"):
            continue  # the tus endpoint: plain-text refusals of its own (tests/imaging/test_tus.py)
        assert {"403", "404"} <= op["responses"].keys(), (method, path)
        assert ("400" in op["responses"]) == ("requestBody" in op), (method, path)


def test_the_errors_sent_have_the_documented_shapes(client_as, org_a, admin_a):
    schema = _schema(client_as(admin_a))
    invalid = client_as(admin_a).post("/api/v1/grants/", {}, content_type="application/json")
    assert invalid.status_code == 400 and "case" in invalid.json()
    _validate(schema, "/api/v1/grants/", "post", 400, invalid.json())
    missing = client_as(admin_a).get(f"/api/v1/grants/{uuid.uuid4()}/")
    assert missing.status_code == 404
    _validate(schema, "/api/v1/grants/{grant_id}/", "get", 404, missing.json())
    patient = member(org_a, Role.PATIENT)  # refused by the access gate, before DRF: JSON too
    refused = client_as(patient).get("/api/v1/grants/")
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    _validate(schema, "/api/v1/grants/", "get", 403, refused.json())
    # a shape that is not the documented one fails the check (the check can fail)
    with pytest.raises(jsonschema.ValidationError):
        _validate(schema, "/api/v1/grants/{grant_id}/", "get", 404, {"error": "not found"})
