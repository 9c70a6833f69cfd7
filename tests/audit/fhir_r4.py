"""A structural check of FHIR R4 AuditEvent resources, written from the R4 specification
(http://hl7.org/fhir/R4/auditevent.html): every element with its cardinality and type, required
elements present, no unknown elements, codes from the required value sets, invariant sev-1, and
FHIR JSON rules (no nulls, no empty strings, arrays or objects)."""

from __future__ import annotations

import re
from typing import Any

MANY = None  # upper bound "*"

INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
CODE = re.compile(r"^[^\s]+( [^\s]+)*$")
URI = re.compile(r"^\S+$")

# element -> (min, max, type). Types: a primitive name, or a dict of child elements.
CODING = {"system": (0, 1, "uri"), "version": (0, 1, "string"), "code": (0, 1, "code"),
          "display": (0, 1, "string"), "userSelected": (0, 1, "boolean")}
CODEABLE = {"coding": (0, MANY, CODING), "text": (0, 1, "string")}
IDENTIFIER = {"use": (0, 1, "code"), "type": (0, 1, CODEABLE), "system": (0, 1, "uri"),
              "value": (0, 1, "string")}
REFERENCE = {"reference": (0, 1, "string"), "type": (0, 1, "uri"), "identifier": (0, 1, IDENTIFIER),
             "display": (0, 1, "string")}
PERIOD = {"start": (0, 1, "dateTime"), "end": (0, 1, "dateTime")}
META = {"versionId": (0, 1, "id"), "lastUpdated": (0, 1, "instant"), "source": (0, 1, "uri"),
        "profile": (0, MANY, "uri"), "security": (0, MANY, CODING), "tag": (0, MANY, CODING)}

AUDIT_EVENT = {
    "resourceType": (1, 1, "string"),
    "id": (0, 1, "id"),
    "meta": (0, 1, META),
    "type": (1, 1, CODING),
    "subtype": (0, MANY, CODING),
    "action": (0, 1, "code"),
    "period": (0, 1, PERIOD),
    "recorded": (1, 1, "instant"),
    "outcome": (0, 1, "code"),
    "outcomeDesc": (0, 1, "string"),
    "purposeOfEvent": (0, MANY, CODEABLE),
    "agent": (1, MANY, {
        "type": (0, 1, CODEABLE),
        "role": (0, MANY, CODEABLE),
        "who": (0, 1, REFERENCE),
        "altId": (0, 1, "string"),
        "name": (0, 1, "string"),
        "requestor": (1, 1, "boolean"),
        "location": (0, 1, REFERENCE),
        "policy": (0, MANY, "uri"),
        "media": (0, 1, CODING),
        "network": (0, 1, {"address": (0, 1, "string"), "type": (0, 1, "code")}),
        "purposeOfUse": (0, MANY, CODEABLE),
    }),
    "source": (1, 1, {
        "site": (0, 1, "string"),
        "observer": (1, 1, REFERENCE),
        "type": (0, MANY, CODING),
    }),
    "entity": (0, MANY, {
        "what": (0, 1, REFERENCE),
        "type": (0, 1, CODING),
        "role": (0, 1, CODING),
        "lifecycle": (0, 1, CODING),
        "securityLabel": (0, MANY, CODING),
        "name": (0, 1, "string"),
        "description": (0, 1, "string"),
        "query": (0, 1, "base64Binary"),
        "detail": (0, MANY, {"type": (1, 1, "string"), "valueString": (0, 1, "string"),
                             "valueBase64Binary": (0, 1, "base64Binary")}),
    }),
}

#: required bindings (R4): AuditEventAction, AuditEventOutcome, network type
VALUE_SETS = {
    ("action",): {"C", "R", "U", "D", "E"},
    ("outcome",): {"0", "4", "8", "12"},
    ("agent", "network", "type"): {"1", "2", "3", "4", "5"},
}


def _primitive(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if not isinstance(value, str) or value == "" or (value != value.strip() and kind != "string"):
        return False
    if kind == "instant":
        return bool(INSTANT.match(value))
    if kind == "dateTime":
        return bool(re.match(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?)?)?$", value))
    if kind == "id":
        return bool(ID.match(value))
    if kind == "code":
        return bool(CODE.match(value))
    if kind == "uri":
        return bool(URI.match(value))
    return True  # string, base64Binary


def _check(obj: Any, spec: dict[str, Any], path: tuple[str, ...], errors: list[str]) -> None:
    if not isinstance(obj, dict) or not obj:
        errors.append(f"{'.'.join(path) or 'resource'}: must be a non-empty object")
        return
    for key in obj:
        if key not in spec:
            errors.append(f"{'.'.join((*path, key))}: not an element of R4 AuditEvent")
    for key, (low, high, kind) in spec.items():
        here = (*path, key)
        name = ".".join(here)
        if key not in obj:
            if low:
                errors.append(f"{name}: required ({low}..{'*' if high is None else high})")
            continue
        value = obj[key]
        if value is None:
            errors.append(f"{name}: null is not allowed in FHIR JSON")
            continue
        items = value if high is None else [value]
        if high is None and (not isinstance(value, list) or not value):
            errors.append(f"{name}: must be a non-empty array (0..*)")
            continue
        if high == 1 and isinstance(value, list):
            errors.append(f"{name}: at most one (0..1 / 1..1), got an array")
            continue
        if len(items) < low:
            errors.append(f"{name}: at least {low}")
        for item in items:
            if isinstance(kind, dict):
                _check(item, kind, here, errors)
            elif not _primitive(kind, item):
                errors.append(f"{name}: {item!r} is not a valid {kind}")
            elif here in VALUE_SETS and item not in VALUE_SETS[here]:
                errors.append(f"{name}: {item!r} not in the required value set")


def validate_audit_event(resource: dict[str, Any]) -> list[str]:
    """The errors of one resource against R4 AuditEvent (empty when it conforms)."""
    errors: list[str] = []
    _check(resource, AUDIT_EVENT, (), errors)
    if resource.get("resourceType") != "AuditEvent":
        errors.append("resourceType: must be AuditEvent")
    for i, entity in enumerate(resource.get("entity") or []):
        if isinstance(entity, dict):
            if "name" in entity and "query" in entity:
                errors.append(f"entity[{i}]: sev-1 (either a name or a query, not both)")
            for detail in entity.get("detail") or []:
                if isinstance(detail, dict) and ("valueString" in detail) == ("valueBase64Binary" in detail):
                    errors.append(f"entity[{i}].detail: exactly one value[x]")
    for i, agent in enumerate(resource.get("agent") or []):
        network = agent.get("network") if isinstance(agent, dict) else None
        if isinstance(network, dict) and ("address" in network) != ("type" in network):
            errors.append(f"agent[{i}].network: address and type go together")
    return errors


def validate_bundle(bundle: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if bundle.get("resourceType") != "Bundle":
        errors.append("Bundle.resourceType")
    if bundle.get("type") not in {"document", "message", "transaction", "transaction-response", "batch",
                                  "batch-response", "history", "searchset", "collection"}:
        errors.append("Bundle.type")
    for i, entry in enumerate(bundle.get("entry", [])):
        if set(entry) - {"fullUrl", "resource", "search"}:
            errors.append(f"entry[{i}]: unknown element")
        errors += [f"entry[{i}].resource.{e}" for e in validate_audit_event(entry.get("resource", {}))]
    return errors
