"""FHIR R4 AuditEvent export, and the one table that maps Lightbox actions to audit codes.

``FHIR_MAP`` gives each action of apps.audit.actions its event ``type`` (DICOM audit vocabulary,
PS3.16 CID 400-403, where one applies), ``subtype`` codes and FHIR ``action`` (C R U D E). A
share of a case is a privacy disclosure, recorded as IHE BALP's PrivacyDisclosure.Source pattern
does: type 110106 Export, subtype ISO 21089 ``disclose``, action R, a source agent (110153) and a
recipient agent (110152), and the patient as an entity.

Exported resources hold ids (public UUIDs), never patient names or MRNs: the patient entity is
identified by Lightbox's patient public id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from apps.audit import actions as A
from apps.audit.models import ActorType, AuditEvent, Outcome

DCM = "http://dicom.nema.org/resources/ontology/DCM"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
LIGHTBOX_ACTION = "urn:lightbox:audit-action"
BALP_DISCLOSURE_SOURCE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source"

#: the DICOM audit event codes used here (PS3.16 CID 400, 401, 403)
DCM_DISPLAY = {
    "110100": "Application Activity",
    "110101": "Audit Log Used",
    "110102": "Begin Transferring DICOM Instances",
    "110103": "DICOM Instances Accessed",
    "110104": "DICOM Instances Transferred",
    "110105": "DICOM Study Deleted",
    "110106": "Export",
    "110107": "Import",
    "110110": "Patient Record",
    "110113": "Security Alert",
    "110114": "User Authentication",
    "110122": "Login",
    "110123": "Logout",
    "110129": "Security Configuration",
    "110132": "Use of Restricted Function",
    "110135": "Object Security Attributes Changed",
    "110136": "Security Roles Changed",
    "110137": "User Security Attributes Changed",
    "110152": "Destination Role ID",
    "110153": "Source Role ID",
}


#: AuditEvent.outcome: 0 success, 4 minor failure (a refusal: the user may try again), 8 serious
#: failure (the action failed)
OUTCOME_CODES = {Outcome.ALLOWED: "0", Outcome.DENIED: "4", Outcome.FAILED: "8"}


@dataclass(frozen=True)
class Mapping:
    type: str                      # DICOM event id (CID 400)
    action: str                    # FHIR AuditEvent.action: C R U D E
    subtypes: tuple[str, ...] = field(default=())  # DICOM codes (CID 401 / 403)
    disclosure: bool = False       # an IHE BALP privacy disclosure (a share)


_DISCLOSE = Mapping("110106", "R", disclosure=True)
_AUTH_IN = Mapping("110114", "E", ("110122",))
_PERMS = Mapping("110113", "U", ("110135",))
_REVOKE = Mapping("110113", "D", ("110135",))
_RESTRICTED = Mapping("110113", "E", ("110132",))
_RECORD_C = Mapping("110110", "C")
_RECORD_R = Mapping("110110", "R")
_RECORD_U = Mapping("110110", "U")

#: Lightbox action -> audit codes. The one mapping table.
FHIR_MAP: dict[str, Mapping] = {
    A.AUTH_SIGNED_IN: _AUTH_IN,
    A.AUTH_SIGNED_OUT: Mapping("110114", "E", ("110123",)),
    A.AUTH_SIGN_IN_FAILED: _AUTH_IN,
    A.INVITATION_ACCEPTED: Mapping("110113", "C", ("110137",)),
    A.MEMBERSHIP_ADDED: Mapping("110113", "C", ("110136",)),
    A.MEMBERSHIP_UPDATED: Mapping("110113", "U", ("110136",)),
    A.ORGANIZATION_POLICY_CHANGED: Mapping("110113", "U", ("110129",)),
    A.ACCESS_DENIED: _RESTRICTED,
    A.AUDIT_EXPORTED: Mapping("110101", "R"),
    A.PATIENT_CREATED: _RECORD_C,
    A.PATIENT_MRN_RENAMED: _RECORD_U,
    A.PATIENT_UPDATED: _RECORD_U,
    A.CASE_CREATED: _RECORD_C,
    A.CASE_EDITED: _RECORD_U,
    A.CASE_VIEWED: _RECORD_R,
    A.STUDY_VIEWED: _RECORD_R,
    A.CASE_CLOSED: _RECORD_U,
    A.CASE_REOPENED: _RECORD_U,
    A.NOTE_ADDED: _RECORD_U,
    A.BOARD_CREATED: _RECORD_C,
    A.BOARD_EDITED: _RECORD_U,
    A.BOARD_STARTED: _DISCLOSE,   # a board grants its participants access to its cases
    A.BOARD_ENDED: _REVOKE,
    A.BOARD_WINDOW_ENDED: _REVOKE,  # its participants' access ended with the review window
    A.VIEWER_OPENED: Mapping("110103", "R"),
    A.VIEWER_CLOSED: Mapping("110103", "R"),
    A.EDUCATION_VIEWED: Mapping("110103", "R"),
    A.DOWNLOAD_STARTED: Mapping("110102", "R"),
    A.DOWNLOAD_COMPLETED: Mapping("110104", "R"),
    A.DOWNLOAD_INCOMPLETE: Mapping("110104", "R"),
    A.GRANT_DOWNLOAD: Mapping("110104", "R"),
    A.DEID_EXPORTED: Mapping("110106", "R"),
    A.DEID_EXPORT_STARTED: Mapping("110106", "E"),  # Export: the job is asked for
    A.DEID_EXPORT_FAILED: Mapping("110106", "E"),   # Export: the job failed (outcome 8)
    A.GRANT_CREATED: _DISCLOSE,
    A.SHARE_LINK_CREATED: _DISCLOSE,
    A.GRANT_EXTENDED: _PERMS,
    A.SHARE_EXPIRED: _REVOKE,
    A.GRANT_REVOKED: _REVOKE,
    A.GRANT_MEMBER_REMOVED: _REVOKE,
    A.SHARE_LINK_REVOKED: _REVOKE,
    A.SHARE_REFUSED: _RESTRICTED,
    A.SHARE_LINK_REFUSED: _RESTRICTED,
    A.SHARE_LINK_SECOND_FACTOR_FAILED: _AUTH_IN,
    A.GRANT_ACCEPTED: _RECORD_R,
    A.GRANT_OPENED: _RECORD_R,
    A.ORIGINAL_REQUEST_CREATED: Mapping("110113", "C", ("110135",)),
    A.ORIGINAL_REQUEST_APPROVED: _PERMS,
    A.ORIGINAL_REQUEST_DECLINED: _PERMS,
    A.ORIGINAL_REQUEST_WITHDRAWN: _PERMS,
    A.AUTH_MFA_ENROLLED: Mapping("110113", "U", ("110137",)),
    A.AUTH_MFA_RESET: Mapping("110113", "U", ("110137",)),
    A.AUTH_MFA_RECOVERY_CODES_SAVED: Mapping("110113", "U", ("110137",)),
    A.AUTH_MFA_RECOVERY_CODE_USED: _AUTH_IN,
    A.AUTH_MFA_RECOVERY_CODES_RENEWED: Mapping("110113", "U", ("110137",)),
    A.SHARING_POLICY_UPDATED: Mapping("110113", "U", ("110129",)),
    A.AUTH_OTP_VERIFIED: _AUTH_IN,
    A.AUTH_OTP_FAILED: _AUTH_IN,
    A.AUTH_OTP_LOCKED_OUT: Mapping("110113", "U", ("110137",)),
    A.AUTH_OTP_REFUSED_LOCKED: _AUTH_IN,
    A.AUTH_STEP_UP_REQUIRED: _AUTH_IN,
    A.AUTH_IDLE_TIMEOUT: Mapping("110114", "E", ("110123",)),
    A.AUTH_SESSIONS_ENDED: Mapping("110114", "E", ("110123",)),
    A.AUTH_PASSWORD_LOGIN_REFUSED: _AUTH_IN,
    A.AUTH_SSO_REFUSED: _AUTH_IN,
    A.AUTH_SSO_REFUSED_OTHER_ORGANIZATIONS: _AUTH_IN,
    A.AUTH_SSO_SESSION_ENDED: Mapping("110114", "E", ("110123",)),  # a logout, as the idle timeout's
    A.AUTH_SSO_LINKED: Mapping("110113", "U", ("110137",)),
    A.AUTH_LOCKED_OUT: Mapping("110113", "U", ("110137",)),
    A.ACCOUNT_CREATED: Mapping("110113", "C", ("110137",)),
    A.INVITATION_CREATED: Mapping("110113", "C", ("110137",)),
    A.INVITATION_REVOKED: Mapping("110113", "D", ("110137",)),
    A.INVITATION_RESENT: Mapping("110113", "U", ("110137",)),
    A.INVITATION_REFUSED: _AUTH_IN,
    A.INVITATION_BIRTH_DATE_FAILED: _AUTH_IN,
    A.INVITATION_TOKEN_LOCKED_OUT: Mapping("110113", "U", ("110137",)),
    A.ORGANIZATION_SSO_CHANGED: Mapping("110113", "U", ("110129",)),
    A.ATTACHMENT_ADDED: _RECORD_U,
    A.ATTACHMENT_DOWNLOADED: Mapping("110106", "R"),
    A.IMAGING_UPLOAD_CREATED: Mapping("110107", "C"),
    A.IMAGING_UPLOAD_COMPLETED: Mapping("110107", "C"),
    A.IMAGING_UPLOAD_DELETED: Mapping("110107", "D"),
    A.IMAGING_UPLOAD_EXPIRED: Mapping("110107", "D"),
    A.IMAGING_UPLOAD_DISCARDED: Mapping("110107", "D"),
    A.IMAGING_INGEST: Mapping("110107", "C"),
    A.IMAGING_STUDY_INGESTED: Mapping("110107", "C"),
    A.IMAGING_STUDY_DELETED: Mapping("110105", "D"),
    A.IMAGING_STUDY_ATTACHED: _RECORD_U,  # the case record gains a study
    A.UPLOAD_REPORT_VIEWED: _RECORD_R,
    A.KEYS_ROTATED: Mapping("110113", "U", ("110129",)),  # Security Alert: Security Configuration
    A.BLOB_INTEGRITY_FAILED: Mapping("110113", "R"),  # Security Alert: a read found stored data altered
    A.ORGANIZATION_CREATED: Mapping("110113", "C", ("110129",)),  # a new tenant's security configuration
}


def mapping_for(event: AuditEvent) -> Mapping:
    """The row for this event's action; an unknown action falls back on its context."""
    found = FHIR_MAP.get(event.action)
    if found is not None:
        return found
    if event.outcome != Outcome.ALLOWED:
        return _RESTRICTED
    if event.case_ref or event.study_ref:
        return _RECORD_R
    return Mapping("110100", "E")


def _dcm(code: str) -> dict[str, str]:
    return {"system": DCM, "code": code, "display": DCM_DISPLAY[code]}


def _instant(value: Any) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ident(kind: str, value: Any, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"identifier": {"system": f"urn:lightbox:{kind}", "value": str(value)}}
    if display:
        ref["display"] = display
    return ref


def observer(site: str) -> dict[str, Any]:
    return _ident("system", site, f"Lightbox ({site})")


def to_resource(event: AuditEvent, *, site: str = "lightbox", patients: dict[str, str] | None = None,
                users: dict[int, str] | None = None) -> dict[str, Any]:
    """One AuditEvent resource. ``patients`` maps case public ids to patient public ids, ``users``
    user ids to user public ids (both optional, looked up in bulk by ``bundle``)."""
    m = mapping_for(event)
    outcome = OUTCOME_CODES.get(str(event.outcome), "4")
    subtype = [{"system": LIGHTBOX_ACTION, "code": event.action, "display": A.label(event.action)}]
    subtype += [_dcm(code) for code in m.subtypes]
    if m.disclosure:
        subtype.insert(0, {"system": LIFECYCLE, "code": "disclose", "display": "Disclose Record Lifecycle Event"})

    who: dict[str, Any]
    if event.actor_type == ActorType.USER and event.actor_id:
        who = _ident("user", (users or {}).get(event.actor_id, event.actor_id), event.actor_label or None)
    elif event.actor_type == ActorType.LINK:
        who = _ident("share-link", event.link_ref or event.actor_label or "link", event.actor_label or "link")
    else:
        who = _ident(str(event.actor_type), event.actor_label or event.actor_type)
    actor_agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPATION, "code": "IRCP" if event.actor_type == ActorType.LINK else "AUT",
                             "display": "information recipient" if event.actor_type == ActorType.LINK
                             else "author (originator)"}]},
        "who": who,
        "name": event.actor_label or str(event.actor_type),
        "requestor": True,  # the actor is the one who asked for what happened
    }
    if event.ip:
        actor_agent["network"] = {"address": event.ip, "type": "2"}
    agents = [actor_agent]
    me = observer(site)
    if m.disclosure:  # IHE BALP PrivacyDisclosure.Source: a source agent and a recipient agent
        agents.append({"type": {"coding": [_dcm("110153")]}, "who": me, "requestor": False,
                       "network": {"address": site, "type": "1"}})
        agents.append({"type": {"coding": [_dcm("110152")]},
                       "who": _ident(event.target_type or "recipient", event.target_id or "unknown",
                                     "recipient named by this share"),
                       "requestor": False})

    entities: list[dict[str, Any]] = []
    patient = (patients or {}).get(str(event.case_ref)) if event.case_ref else None
    if patient:
        entities.append({"what": _ident("patient", patient),
                         "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                         "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}})
    if event.case_ref:
        entities.append({"what": _ident("case", event.case_ref),
                         "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                         "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}})
    if event.study_ref:
        entities.append({"what": _ident("study", event.study_ref),
                         "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                         "role": {"system": OBJECT_ROLE, "code": "3", "display": "Report"},
                         "name": "DICOM study"})
    if event.target_type and event.target_type not in ("case", "study"):
        target: dict[str, Any] = {"what": _ident(event.target_type, event.target_id),
                                  "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                                  "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}}
        if event.details:
            target["detail"] = [{"type": str(k), "valueString": v if isinstance(v, str) else json.dumps(v)}
                                for k, v in sorted(event.details.items())]
        entities.append(target)
    elif event.details and entities:
        entities[-1]["detail"] = [{"type": str(k), "valueString": v if isinstance(v, str) else json.dumps(v)}
                                  for k, v in sorted(event.details.items())]

    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"lightbox-audit-{event.pk}",
        "type": _dcm(m.type),
        "subtype": subtype,
        "action": m.action,
        "recorded": _instant(event.created_at),
        "outcome": outcome,
        "outcomeDesc": str(event.outcome),
        "agent": agents,
        "source": {"site": site, "observer": me,
                   "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}]},
    }
    if m.disclosure:
        resource["meta"] = {"profile": [BALP_DISCLOSURE_SOURCE]}
    if entities:
        resource["entity"] = entities
    return resource


def _lookups(events: list[AuditEvent]) -> tuple[dict[str, str], dict[int, str]]:
    from apps.accounts.models import User
    from apps.cases.models import Case

    case_refs = {e.case_ref for e in events if e.case_ref}
    patients = {str(c): str(p) for c, p in Case.objects.filter(public_id__in=case_refs)
                .values_list("public_id", "patient__public_id")}
    user_ids = {e.actor_id for e in events if e.actor_id}
    users = {pk: str(pub) for pk, pub in User.objects.filter(pk__in=user_ids).values_list("pk", "public_id")}
    return patients, users


def bundle_entries(events: Iterable[AuditEvent], *, site: str, base_url: str,
                   chunk: int = 500) -> Iterator[dict[str, Any]]:
    batch: list[AuditEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) >= chunk:
            yield from _entries(batch, site, base_url)
            batch = []
    if batch:
        yield from _entries(batch, site, base_url)


def _entries(batch: list[AuditEvent], site: str, base_url: str) -> Iterator[dict[str, Any]]:
    patients, users = _lookups(batch)
    for event in batch:
        resource = to_resource(event, site=site, patients=patients, users=users)
        yield {"fullUrl": f"{base_url}AuditEvent/{resource['id']}", "resource": resource}


def bundle_stream(events: Iterable[AuditEvent], *, site: str, base_url: str, total: int | None,
                  timestamp: str, chunk: int = 500) -> Iterator[str]:
    """A searchset Bundle of AuditEvent resources, as JSON text in pieces (streamed); the events'
    patients and users looked up ``chunk`` events at a time."""
    head: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "timestamp": timestamp}
    if total is not None:
        head["total"] = total
    text = json.dumps(head)
    yield text[:-1] + ', "entry": ['
    first = True
    for entry in bundle_entries(events, site=site, base_url=base_url, chunk=chunk):
        yield ("" if first else ",") + json.dumps(entry)
        first = False
    yield "]}"
