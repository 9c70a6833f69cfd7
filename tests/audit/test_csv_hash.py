"""Each row of the CSV export can be checked against its hash from the file alone: every value
the hash covers is a column (the actor's id too), recomputed as docs/architecture.md says
("Checking an exported CSV"), written out here without the portal's own code."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import uuid
from datetime import UTC, datetime

import pytest
from django.test import RequestFactory
from django.urls import reverse

from apps.audit import actions
from apps.audit.services import record
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


def _value(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell   # the apostrophe added for spreadsheets


def _integral(value):
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _hash_of(row: dict[str, str]) -> str:
    r = {k: _value(v) for k, v in row.items()}
    at = datetime.fromisoformat(r["time"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {
        "v": 1, "seq": int(r["seq"]), "prev": r["prev_hash"], "at": at, "org": int(r["organization"]),
        "actor": int(r["actor_id"]) if r["actor_id"] else None, "actor_type": r["actor_type"],
        "actor_label": r["actor"], "link": r["link"] or None, "ip": r["ip"] or None, "ua": r["user_agent"],
        "case": r["case"] or None, "study": r["study"] or None, "action": r["action"],
        "target_type": r["target_type"], "target_id": r["target_id"], "outcome": r["outcome"],
        "details": _integral(json.loads(r["details"])),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def test_every_row_of_the_csv_checks_against_its_hash(org_a, admin_a, client_as):
    case = CaseFactory(organization=org_a)
    request = RequestFactory().get("/", HTTP_USER_AGENT="=cmd|' /C calc'!A0 Café", REMOTE_ADDR="2001:db8::1")
    request.user = admin_a
    record(action=actions.CASE_VIEWED, actor=admin_a, organization=org_a, target=case, request=request,
           details={"bytes": 2.0, "note": "ñ ids only", "ratio": 0.5})
    record(action=actions.SHARE_LINK_REFUSED, organization=org_a, case=case, link=uuid.uuid4(),
           details={"range": [1, 2.0]})
    record(action=actions.CASE_VIEWED, organization=org_a, actor_label="'quoted by hand")    # no actor
    record(action=actions.CASE_VIEWED, organization=org_a, actor_label="-minus first")
    body = b"".join(client_as(admin_a).post(reverse("audit:export_csv")).streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) >= 5
    by_label = {_value(r["actor"]): r for r in rows}
    assert by_label["admin@alpha.example"]["actor_id"] == str(admin_a.pk)
    assert by_label["'quoted by hand"]["actor"] == "''quoted by hand" and by_label["'quoted by hand"]["actor_id"] == ""
    assert by_label["-minus first"]["actor"] == "'-minus first"          # still no formula
    for row in rows:
        assert _hash_of(row) == row["hash"], row["id"]
    # the export holds the whole chain: each row names the hash of the one before it
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))


def test_a_changed_cell_no_longer_checks(org_a, admin_a, client_as):
    record(action=actions.CASE_VIEWED, actor=admin_a, organization=org_a)
    body = b"".join(client_as(admin_a).post(reverse("audit:export_csv")).streaming_content).decode()
    row = list(csv.DictReader(io.StringIO(body)))[-1]
    assert _hash_of(row) == row["hash"]
    assert _hash_of({**row, "actor_id": str(admin_a.pk + 1)}) != row["hash"]
    assert _hash_of({**row, "outcome": "denied"}) != row["hash"]
