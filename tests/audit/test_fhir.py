"""Must show 3: the FHIR export validates against the R4 AuditEvent structure, with DICOM audit
codes where they apply and a share mapped to a privacy disclosure as IHE BALP does."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse

from apps.audit import actions
from apps.audit.fhir import DCM, FHIR_MAP, LIFECYCLE
from apps.audit.models import AuditEvent
from apps.audit.services import record
from tests.audit.fhir_r4 import validate_audit_event, validate_bundle
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db

#: where the DICOM vocabulary applies, the event type it must carry
EXPECTED_TYPE = {
    actions.AUTH_SIGNED_IN: "110114", actions.AUTH_SIGNED_OUT: "110114", actions.AUTH_SIGN_IN_FAILED: "110114",
    actions.AUTH_OTP_FAILED: "110114",
    actions.VIEWER_OPENED: "110103", actions.VIEWER_CLOSED: "110103",
    actions.DOWNLOAD_COMPLETED: "110104", actions.GRANT_DOWNLOAD: "110104",
    actions.DEID_EXPORTED: "110106",
    actions.IMAGING_UPLOAD_COMPLETED: "110107", actions.IMAGING_STUDY_INGESTED: "110107",
    actions.ACCESS_DENIED: "110113", actions.MEMBERSHIP_UPDATED: "110113",
    actions.ORGANIZATION_POLICY_CHANGED: "110113", actions.GRANT_REVOKED: "110113",
    actions.GRANT_CREATED: "110106", actions.SHARE_LINK_CREATED: "110106",
}
DISCLOSURES = {actions.GRANT_CREATED, actions.SHARE_LINK_CREATED}


def test_every_action_of_the_vocabulary_has_a_mapping():
    assert set(actions.ALL) <= set(FHIR_MAP)
    assert set(FHIR_MAP) <= set(actions.ALL)


def test_the_structural_check_can_fail():
    good = {"resourceType": "AuditEvent", "type": {"system": DCM, "code": "110114"},
            "recorded": "2026-01-01T00:00:00Z", "agent": [{"requestor": True}],
            "source": {"observer": {"display": "x"}}}
    assert validate_audit_event(good) == []
    broken = {**good, "outcome": "1", "agent": [{"who": {"display": "x"}}], "extra": 1}
    del broken["type"]
    broken["source"] = {"site": "x"}
    errors = "\n".join(validate_audit_event(broken))
    for needle in ("type: required", "agent.requestor: required", "source.observer: required",
                   "outcome: '1' not in", "extra: not an element", ):
        assert needle in errors
    assert validate_audit_event({**good, "recorded": "2026-01-01"})  # an instant needs a time
    assert validate_audit_event({**good, "subtype": []})              # no empty arrays in FHIR JSON
    assert validate_audit_event({**good, "entity": [{"name": "a", "query": "YQ=="}]})  # sev-1


@pytest.fixture
def trail(org_a, admin_a):
    """One event of every action the vocabulary knows, recorded in organization A."""
    case = CaseFactory(organization=org_a)
    study_ref = uuid.uuid4()
    events = {}
    for name in actions.ALL:
        denied = name in (actions.ACCESS_DENIED, actions.AUTH_SIGN_IN_FAILED, actions.AUTH_OTP_FAILED,
                          actions.SHARE_REFUSED, actions.SHARE_LINK_REFUSED, actions.SHARE_LINK_SECOND_FACTOR_FAILED)
        # the imaging features pass their Study; a stand-in with a public id does here
        study = type("Study", (), {"public_id": study_ref})() if name.startswith(
            ("viewer.", "download.", "imaging.study_", "deid.")) else None
        events[name] = record(action=name, actor=admin_a, organization=org_a, case=case, study=study,
                              outcome="denied" if denied else "allowed", details={"bytes": 12, "note": "ids only"})
    return case, events


def _export(client, **params):
    response = client.post(reverse("audit:export_fhir"), params)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    return json.loads(b"".join(response.streaming_content))


def test_fhir_export_validates_and_carries_dicom_and_balp_codes(trail, admin_a, client_as):
    case, _events = trail
    bundle = _export(client_as(admin_a))
    assert validate_bundle(bundle) == []
    by_action: dict[str, dict] = {}
    for entry in bundle["entry"]:
        res = entry["resource"]
        action = next(c["code"] for c in res["subtype"] if c["system"] == "urn:lightbox:audit-action")
        by_action[action] = res  # the last one of each action
    assert set(actions.ALL) <= set(by_action)
    for action, code in EXPECTED_TYPE.items():
        res = by_action[action]
        assert res["type"]["system"] == DCM and res["type"]["code"] == code, action
    assert by_action[actions.AUTH_SIGNED_IN]["subtype"][-1]["code"] == "110122"   # Login
    assert by_action[actions.AUTH_SIGNED_OUT]["subtype"][-1]["code"] == "110123"  # Logout
    assert by_action[actions.ACCESS_DENIED]["outcome"] == "4"
    assert by_action[actions.CASE_VIEWED]["outcome"] == "0"
    assert by_action[actions.VIEWER_OPENED]["action"] == "R"
    assert any(e["what"]["identifier"]["system"] == "urn:lightbox:study"
               for e in by_action[actions.VIEWER_OPENED]["entity"])
    for action in DISCLOSURES:
        res = by_action[action]
        # IHE BALP PrivacyDisclosure.Source: 110106 Export, subtype disclose, action R
        assert res["meta"]["profile"] == ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
                                          "IHE.BasicAudit.PrivacyDisclosure.Source"]
        assert (res["type"]["code"], res["action"]) == ("110106", "R")
        assert {"system": LIFECYCLE, "code": "disclose"}.items() <= res["subtype"][0].items()
        agent_types = {a["type"]["coding"][0].get("code") for a in res["agent"]}
        assert {"110153", "110152"} <= agent_types
        source_agent = next(a for a in res["agent"] if a["type"]["coding"][0].get("code") == "110153")
        assert source_agent["who"] == res["source"]["observer"]  # BALP val-audit-source
        patient = [e for e in res["entity"] if e["role"]["code"] == "1"]
        assert patient and patient[0]["what"]["identifier"]["value"] == str(case.patient.public_id)
        assert patient[0]["type"]["code"] == "1"
    assert any(a["requestor"] for a in by_action[actions.CASE_VIEWED]["agent"])
    text = json.dumps(bundle)
    assert case.patient.name not in text and case.patient.mrn not in text


def test_fhir_export_follows_the_search(trail, admin_a, client_as):
    bundle = _export(client_as(admin_a), action=actions.CASE_VIEWED)
    codes = {c["code"] for e in bundle["entry"] for c in e["resource"]["subtype"]
             if c["system"] == "urn:lightbox:audit-action"}
    assert codes == {actions.CASE_VIEWED}


def test_exports_are_for_org_admins_and_are_audited(trail, admin_a, admin_b, clinician_a, client_as):
    assert client_as(clinician_a).post(reverse("audit:export_fhir")).status_code == 403
    assert client_as(clinician_a).post(reverse("audit:export_csv")).status_code == 403
    other = _export(client_as(admin_b))
    ids = {int(e["resource"]["id"].rsplit("-", 1)[1]) for e in other["entry"]}
    b_events = AuditEvent.objects.filter(organization=admin_b.memberships.get().organization)
    # only B's own events (its admin's sign-in), as they were when the export was asked: its own
    # event, recorded then, names how many the file holds
    assert ids == set(b_events.exclude(action=actions.AUDIT_EXPORTED).values_list("pk", flat=True))
    assert not ids & set(AuditEvent.objects.filter(organization=trail[0].organization).values_list("pk", flat=True))
    assert b_events.get(action=actions.AUDIT_EXPORTED).details["rows"] == len(ids)
    _export(client_as(admin_a))
    assert AuditEvent.objects.filter(action=actions.AUDIT_EXPORTED, actor=admin_a, details__format="fhir").exists()
