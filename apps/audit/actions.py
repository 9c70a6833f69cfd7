"""The audit vocabulary: every action name that features pass to ``record(action=...)``.

One module, so the audit page's action filter, the FHIR mapping (apps.audit.fhir) and the
table-driven test (tests/audit/test_trail.py) all read the same list. A feature that records a new
action adds its constant here and its row in ``apps.audit.fhir.FHIR_MAP``.

One name per action: the name the code records. (Earlier drafts listed a second spelling for
several actions, e.g. ``mfa.enrolled`` beside ``auth.mfa_enrolled``; those were never recorded
and are gone.)
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# The list (#9) -> the name(s) recorded for it:
#   sign-in / sign-out / failed sign-in ....... auth.signed_in / auth.signed_out / auth.sign_in_failed
#                                               (also auth.locked_out, auth.password_login_refused,
#                                               auth.sso_refused, auth.sso_refused_other_organizations,
#                                               auth.idle_timeout, auth.sessions_ended,
#                                               auth.sso_session_ended)
#   MFA enrolment ............................. auth.mfa_enrolled (auth.mfa_reset,
#                                               auth.mfa_recovery_codes_saved / _renewed)
#   MFA failures .............................. auth.otp_failed, auth.otp_locked_out,
#                                               auth.otp_refused_locked (passes: auth.otp_verified,
#                                               auth.mfa_recovery_code_used; auth.step_up_required)
#   invitations sent / accepted ............... invitation.created / invitation.accepted
#                                               (invitation.revoked, .resent, .refused,
#                                               .birth_date_failed, .token_locked_out; account.created)
#   case created / closed ..................... case.created / case.closed (case.reopened,
#                                               case.edited, patient.created, patient.mrn_renamed,
#                                               patient.updated,
#                                               note.added, attachment.*, board.*;
#                                               board.window_ended: a review window ran out)
#   study uploaded / ingested / deleted ....... imaging.upload_completed / imaging.study_ingested
#                                               (one per study; imaging.ingest per run) /
#                                               imaging.study_deleted (imaging.upload_created,
#                                               _deleted, _expired; imaging.study_attached)
#   case-page view ............................ case.viewed (grant.opened: a shared case opened;
#                                               study.viewed: a study's page; upload_report.viewed:
#                                               an upload's per-file report)
#   viewer opened / closed .................... viewer.opened / viewer.closed (details.reason
#                                               "timeout" when the idle sweep closes it,
#                                               "signed_out" when its browser session is signed out)
#   download (bytes sent, completed or not) ... download.started (before its first byte: a transfer
#                                               cut off with its process is still in the trail) /
#                                               download.completed / download.incomplete
#                                               (details.bytes_sent); grant.download counts a
#                                               download against a share's limit
#   share created ............................. grant.created (+ share_link.created)
#   share extended ............................ grant.extended
#   member taken out of a group share ......... grant.member_removed (their membership ended)
#   share renewed ............................. grant.created + grant.revoked (reason "renewed")
#                                               + share_link.created
#   share revoked ............................. grant.revoked / share_link.revoked
#   share expired ............................. share.expired (grants and links, by the sweep task)
#   shares refused ............................ share.refused, share_link.refused,
#                                               share_link.second_factor_failed
#   permission and role changes ............... membership.added, membership.updated,
#                                               organization.policy_changed,
#                                               sharing_policy.updated, organization.sso_changed
#   original requested / approved / declined .. original_request.created / .approved / .declined
#   original request closed, its share ended .. original_request.withdrawn (the share it was asked
#                                               under revoked, or its asker left its group)
#   de-identified export made ................. deid.exported (deid.export_started when asked for,
#                                               deid.export_failed when it fails)
#   every denial by the policy ................ access.denied (apps.sharing.policy.require)
#   audit trail exported ...................... audit.exported
#   encryption key rotation ................... keys.rotated (manage.py rotate_keys)
#   stored file altered ....................... blob.integrity_failed (a read of an image's stored
#                                               file whose authentication failed: the viewer's
#                                               frame, the patient portal's education image, a
#                                               de-identified export's original, a download's zip)
#   organization onboarded .................... organization.created (manage.py organization_create)
#                                               + membership.added (its first org admin)

# --- sign-in and security ------------------------------------------------------------------------
AUTH_SIGNED_IN = "auth.signed_in"
AUTH_SIGNED_OUT = "auth.signed_out"
AUTH_SIGN_IN_FAILED = "auth.sign_in_failed"
INVITATION_ACCEPTED = "invitation.accepted"
MEMBERSHIP_ADDED = "membership.added"
MEMBERSHIP_UPDATED = "membership.updated"
ORGANIZATION_POLICY_CHANGED = "organization.policy_changed"
ACCESS_DENIED = "access.denied"
AUDIT_EXPORTED = "audit.exported"
# --- cases ---------------------------------------------------------------------------------------
PATIENT_CREATED = "patient.created"
PATIENT_MRN_RENAMED = "patient.mrn_renamed"
#: a patient's recorded name or birth date corrected (from one of their cases' pages); details
#: name the fields changed, never their values
PATIENT_UPDATED = "patient.updated"
CASE_CREATED = "case.created"
CASE_EDITED = "case.edited"
CASE_VIEWED = "case.viewed"
STUDY_VIEWED = "study.viewed"
CASE_CLOSED = "case.closed"
CASE_REOPENED = "case.reopened"
NOTE_ADDED = "note.added"
BOARD_CREATED = "board.created"
BOARD_EDITED = "board.edited"
BOARD_STARTED = "board.started"
BOARD_ENDED = "board.ended"
#: a live tumor board's review window ran out without anyone ending it: its participants' access
#: (its grants) ended then (``details.ended_at``), recorded once, by the sweep or the first page
#: that shows it ended (apps.cases.services.boards_window_ends_record); its actor is the system
BOARD_WINDOW_ENDED = "board.window_ended"
# --- imaging -------------------------------------------------------------------------------------
VIEWER_OPENED = "viewer.opened"
VIEWER_CLOSED = "viewer.closed"
EDUCATION_VIEWED = "education.viewed"
#: a package's transfer begins (recorded before its first byte; its end is download.completed or
#: download.incomplete, unless the process serving it was killed meanwhile)
DOWNLOAD_STARTED = "download.started"
DOWNLOAD_COMPLETED = "download.completed"
DOWNLOAD_INCOMPLETE = "download.incomplete"
DEID_EXPORTED = "deid.exported"
DEID_EXPORT_STARTED = "deid.export_started"
DEID_EXPORT_FAILED = "deid.export_failed"
# --- sharing -------------------------------------------------------------------------------------
SHARE_EXPIRED = "share.expired"
SHARE_REFUSED = "share.refused"
GRANT_CREATED = "grant.created"
GRANT_REVOKED = "grant.revoked"
GRANT_EXTENDED = "grant.extended"
GRANT_MEMBER_REMOVED = "grant.member_removed"
GRANT_ACCEPTED = "grant.accepted"
GRANT_OPENED = "grant.opened"
GRANT_DOWNLOAD = "grant.download"
SHARE_LINK_CREATED = "share_link.created"
SHARE_LINK_REVOKED = "share_link.revoked"
SHARE_LINK_REFUSED = "share_link.refused"
SHARE_LINK_SECOND_FACTOR_FAILED = "share_link.second_factor_failed"
ORIGINAL_REQUEST_CREATED = "original_request.created"
ORIGINAL_REQUEST_APPROVED = "original_request.approved"
ORIGINAL_REQUEST_DECLINED = "original_request.declined"
ORIGINAL_REQUEST_WITHDRAWN = "original_request.withdrawn"

# --- accounts, policies, attachments, uploads -------------------------------------------------
AUTH_MFA_ENROLLED = "auth.mfa_enrolled"
AUTH_MFA_RESET = "auth.mfa_reset"
AUTH_MFA_RECOVERY_CODES_SAVED = "auth.mfa_recovery_codes_saved"
AUTH_MFA_RECOVERY_CODE_USED = "auth.mfa_recovery_code_used"
AUTH_MFA_RECOVERY_CODES_RENEWED = "auth.mfa_recovery_codes_renewed"
SHARING_POLICY_UPDATED = "sharing_policy.updated"
AUTH_OTP_VERIFIED = "auth.otp_verified"
AUTH_OTP_FAILED = "auth.otp_failed"
AUTH_OTP_LOCKED_OUT = "auth.otp_locked_out"
AUTH_OTP_REFUSED_LOCKED = "auth.otp_refused_locked"
AUTH_STEP_UP_REQUIRED = "auth.step_up_required"
AUTH_IDLE_TIMEOUT = "auth.idle_timeout"
AUTH_SESSIONS_ENDED = "auth.sessions_ended"
AUTH_PASSWORD_LOGIN_REFUSED = "auth.password_login_refused"
AUTH_SSO_REFUSED = "auth.sso_refused"
#: an organization's single sign-on named someone who is also a member of other organizations,
#: whose data its word does not open (apps.sharing.policy.sso_sign_in_allowed)
AUTH_SSO_REFUSED_OTHER_ORGANIZATIONS = "auth.sso_refused_other_organizations"
#: a session an organization's single sign-on opened, signed out: the person came to reach another
#: organization's data since, and the provider could no longer sign them in
#: (apps.accounts.sso.session_outlived; ``details.during``: "request", or "enrolment" of a first
#: second factor)
AUTH_SSO_SESSION_ENDED = "auth.sso_session_ended"
AUTH_SSO_LINKED = "auth.sso_linked"
AUTH_LOCKED_OUT = "auth.locked_out"
ACCOUNT_CREATED = "account.created"
INVITATION_CREATED = "invitation.created"
INVITATION_REVOKED = "invitation.revoked"
#: a pending (or expired) invitation's e-mail sent again, with a new link (the old one stops working)
INVITATION_RESENT = "invitation.resent"
INVITATION_REFUSED = "invitation.refused"
INVITATION_BIRTH_DATE_FAILED = "invitation.birth_date_failed"
INVITATION_TOKEN_LOCKED_OUT = "invitation.token_locked_out"
ORGANIZATION_SSO_CHANGED = "organization.sso_changed"
ATTACHMENT_ADDED = "attachment.added"
ATTACHMENT_DOWNLOADED = "attachment.downloaded"
IMAGING_UPLOAD_CREATED = "imaging.upload_created"
IMAGING_UPLOAD_COMPLETED = "imaging.upload_completed"
IMAGING_UPLOAD_DELETED = "imaging.upload_deleted"
IMAGING_UPLOAD_EXPIRED = "imaging.upload_expired"
#: a failed ingest's staged file discarded, LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS after the failure
IMAGING_UPLOAD_DISCARDED = "imaging.upload_discarded"
IMAGING_INGEST = "imaging.ingest"
IMAGING_STUDY_INGESTED = "imaging.study_ingested"
IMAGING_STUDY_DELETED = "imaging.study_deleted"
#: a study uploaded with no case ("attach later") put into a case afterwards, one per version
IMAGING_STUDY_ATTACHED = "imaging.study_attached"
#: an upload's per-file report read (its file names often name the patient): its report page
#: (target the ingest job), or its status as JSON (target the upload; once per session and upload,
#: as the upload page polls it), or the states of its studies the upload page asks for afterwards
#: (imaging:upload_states; target the ingest job, once per session and upload)
UPLOAD_REPORT_VIEWED = "upload_report.viewed"
KEYS_ROTATED = "keys.rotated"
#: a stored file (an image's encrypted blob) read for someone failed its integrity check (its bytes
#: were altered: AES-GCM authentication, ``apps.imaging.blobs.open_blob``); recorded once per read
#: attempt, target the image (instance), ``details.read`` what read it (``viewer_frame``,
#: ``education_image``, ``deid_export``: the export leaves the file out, ``zip``: a download
#: package, refused before its first byte or stopped short mid-stream), outcome failed; nothing of
#: the file was shown
BLOB_INTEGRITY_FAILED = "blob.integrity_failed"
ORGANIZATION_CREATED = "organization.created"

#: every action with a short human label (the audit page shows and filters by these)
LABELS: dict[str, str] = {
    AUTH_SIGNED_IN: _("Signed in"),
    AUTH_SIGNED_OUT: _("Signed out"),
    AUTH_SIGN_IN_FAILED: _("Sign-in failed"),
    INVITATION_ACCEPTED: _("Invitation accepted"),
    MEMBERSHIP_ADDED: _("Member added"),
    MEMBERSHIP_UPDATED: _("Role or membership changed"),
    ORGANIZATION_POLICY_CHANGED: _("Organization policy changed"),
    ACCESS_DENIED: _("Access denied"),
    AUDIT_EXPORTED: _("Audit trail exported"),
    PATIENT_CREATED: _("Patient created"),
    PATIENT_MRN_RENAMED: _("Patient's MRN renamed as a duplicate (by a migration)"),
    PATIENT_UPDATED: _("Patient details corrected"),
    CASE_CREATED: _("Case created"),
    CASE_EDITED: _("Case edited"),
    CASE_VIEWED: _("Case page viewed"),
    STUDY_VIEWED: _("Study page viewed"),
    CASE_CLOSED: _("Case closed"),
    CASE_REOPENED: _("Case reopened"),
    NOTE_ADDED: _("Note added"),
    BOARD_CREATED: _("Tumor board created"),
    BOARD_EDITED: _("Tumor board edited"),
    BOARD_STARTED: _("Tumor board started"),
    BOARD_ENDED: _("Tumor board ended"),
    BOARD_WINDOW_ENDED: _("Tumor board ended: its review window ran out"),
    VIEWER_OPENED: _("Viewer opened"),
    VIEWER_CLOSED: _("Viewer closed"),
    EDUCATION_VIEWED: _("Education copy viewed"),
    DOWNLOAD_STARTED: _("Download started"),
    DOWNLOAD_COMPLETED: _("Download completed"),
    DOWNLOAD_INCOMPLETE: _("Download not completed"),
    DEID_EXPORTED: _("De-identified export made"),
    DEID_EXPORT_STARTED: _("De-identified export started"),
    DEID_EXPORT_FAILED: _("De-identified export failed"),
    SHARE_EXPIRED: _("Share expired"),
    SHARE_REFUSED: _("Share refused"),
    GRANT_CREATED: _("Access granted (shared)"),
    GRANT_REVOKED: _("Access revoked"),
    GRANT_MEMBER_REMOVED: _("Removed from a group share"),
    GRANT_EXTENDED: _("Access extended"),
    GRANT_ACCEPTED: _("Share accepted"),
    GRANT_OPENED: _("Shared case opened"),
    GRANT_DOWNLOAD: _("Download on a share"),
    SHARE_LINK_CREATED: _("Share link created"),
    SHARE_LINK_REVOKED: _("Share link revoked"),
    SHARE_LINK_REFUSED: _("Share link refused"),
    SHARE_LINK_SECOND_FACTOR_FAILED: _("Share link code failed"),
    ORIGINAL_REQUEST_CREATED: _("Original requested"),
    ORIGINAL_REQUEST_APPROVED: _("Original request approved"),
    ORIGINAL_REQUEST_DECLINED: _("Original request declined"),
    ORIGINAL_REQUEST_WITHDRAWN: _("Original request withdrawn: its share ended"),
    AUTH_MFA_ENROLLED: _("Two-factor enrolled"),
    AUTH_MFA_RESET: _("Two-factor reset"),
    AUTH_MFA_RECOVERY_CODES_SAVED: _("Recovery codes saved"),
    AUTH_MFA_RECOVERY_CODE_USED: _("Recovery code used"),
    AUTH_MFA_RECOVERY_CODES_RENEWED: _("Recovery codes renewed"),
    SHARING_POLICY_UPDATED: _("Sharing policy changed"),
    AUTH_OTP_VERIFIED: _("Two-factor check passed"),
    AUTH_OTP_FAILED: _("Two-factor check failed"),
    AUTH_OTP_LOCKED_OUT: _("Two-factor locked out"),
    AUTH_OTP_REFUSED_LOCKED: _("Two-factor refused (locked)"),
    AUTH_STEP_UP_REQUIRED: _("Re-authentication required"),
    AUTH_IDLE_TIMEOUT: _("Signed out after inactivity"),
    AUTH_SESSIONS_ENDED: _("Sessions ended"),
    AUTH_PASSWORD_LOGIN_REFUSED: _("Password sign-in refused"),
    AUTH_SSO_REFUSED: _("Single sign-on refused"),
    AUTH_SSO_REFUSED_OTHER_ORGANIZATIONS: _("Single sign-on refused: also a member of other organizations"),
    AUTH_SSO_SESSION_ENDED: _("Signed out: single sign-on no longer enough (other organizations reached)"),
    AUTH_SSO_LINKED: _("Single sign-on linked"),
    AUTH_LOCKED_OUT: _("Locked out"),
    ACCOUNT_CREATED: _("Account created"),
    INVITATION_CREATED: _("Invitation sent"),
    INVITATION_REVOKED: _("Invitation revoked"),
    INVITATION_RESENT: _("Invitation sent again"),
    INVITATION_REFUSED: _("Invitation refused"),
    INVITATION_BIRTH_DATE_FAILED: _("Invitation check failed"),
    INVITATION_TOKEN_LOCKED_OUT: _("Invitation locked"),
    ORGANIZATION_SSO_CHANGED: _("Single sign-on settings changed"),
    ATTACHMENT_ADDED: _("Attachment added"),
    ATTACHMENT_DOWNLOADED: _("Attachment downloaded"),
    IMAGING_UPLOAD_CREATED: _("Upload started"),
    IMAGING_UPLOAD_COMPLETED: _("Study uploaded"),
    IMAGING_UPLOAD_DELETED: _("Upload cancelled"),
    IMAGING_UPLOAD_EXPIRED: _("Upload expired"),
    IMAGING_UPLOAD_DISCARDED: _("Failed upload's file discarded"),
    IMAGING_INGEST: _("Ingest run"),
    IMAGING_STUDY_INGESTED: _("Study ingested"),
    IMAGING_STUDY_DELETED: _("Study deleted"),
    IMAGING_STUDY_ATTACHED: _("Study attached to a case"),
    UPLOAD_REPORT_VIEWED: _("Upload report viewed"),
    KEYS_ROTATED: _("Encryption keys re-wrapped"),
    BLOB_INTEGRITY_FAILED: _("Stored image failed its integrity check (altered)"),
    ORGANIZATION_CREATED: _("Organization created"),
}

ALL: tuple[str, ...] = tuple(LABELS)

#: account events about one person (sign-in, MFA, sessions): recorded without an organization,
#: they go into the chain of each organization the person is an active member of, so that
#: organization's admins see them on the audit page (apps.audit.services.record); a person with
#: no membership (or an unknown login) stays in the global chain. Not ``auth.step_up_required``:
#: its path names the object a page acts on, so it goes into that object's organization's chain
#: only (apps.accounts.mfa._record_step_up_required)
MEMBER_ACCOUNT_ACTIONS: frozenset[str] = frozenset({
    AUTH_SIGNED_IN, AUTH_SIGNED_OUT, AUTH_SIGN_IN_FAILED, AUTH_LOCKED_OUT, AUTH_PASSWORD_LOGIN_REFUSED,
    AUTH_IDLE_TIMEOUT, AUTH_SESSIONS_ENDED, AUTH_MFA_ENROLLED, AUTH_MFA_RESET, AUTH_MFA_RECOVERY_CODES_SAVED,
    AUTH_MFA_RECOVERY_CODE_USED, AUTH_MFA_RECOVERY_CODES_RENEWED, AUTH_OTP_VERIFIED, AUTH_OTP_FAILED,
    AUTH_OTP_LOCKED_OUT, AUTH_OTP_REFUSED_LOCKED, AUTH_SSO_REFUSED_OTHER_ORGANIZATIONS, AUTH_SSO_SESSION_ENDED,
})

#: the actions that say someone saw or downloaded a case's studies (the case page's history)
ACCESS_ACTIONS: frozenset[str] = frozenset({
    CASE_VIEWED, STUDY_VIEWED, GRANT_OPENED, VIEWER_OPENED, VIEWER_CLOSED, EDUCATION_VIEWED, DOWNLOAD_STARTED,
    DOWNLOAD_COMPLETED, DOWNLOAD_INCOMPLETE, GRANT_DOWNLOAD, DEID_EXPORTED, ATTACHMENT_DOWNLOADED,
})


def label(action: str) -> str:
    return str(LABELS.get(action, action))


#: an action's label for the events made one particular way (``details.source``): a share given
#: by a tumor board's meeting is not one someone made on the share page, and the end of the
#: meeting ends it: nobody revoked it by hand
SOURCE_LABELS: dict[tuple[str, str], str] = {
    (GRANT_CREATED, "board"): _("Access granted (tumor board meeting)"),
    # the approval of a request for the original DICOM (GrantSource.ORIGINAL_REQUEST), not a share
    (GRANT_CREATED, "original_request"): _("Original DICOM access approved"),
    (GRANT_REVOKED, "board"): _("Access ended with the tumor board meeting"),
}

#: what a download was of (its ``details.rendition``), as the audit page says it
DOWNLOAD_RENDITIONS: dict[str, str] = {
    "original": _("Original DICOM"),
    "lossless": _("Lossless compressed DICOM"),
    "preview": _("Preview (not for diagnosis)"),
    "education": _("Education copy"),
}


def event_label(action: str, details: dict | None) -> str:
    """The label of one event: its action's, or the one for how it was made (``SOURCE_LABELS``)."""
    source = (details or {}).get("source")
    if isinstance(source, str) and (action, source) in SOURCE_LABELS:
        return str(SOURCE_LABELS[action, source])
    return label(action)


#: what a lossless download held when its images were originals received lossy-compressed
#: (``details.lossy_source``, apps.renditions.packages.lossy_source_of): all of them (no lossless
#: copy left, whatever was asked for), or some
LOSSY_SOURCE_RENDITIONS: dict[str, str] = {
    "all": _("Originals as received, lossy compressed (no lossless copy possible)"),
    "some": _("Lossless compressed DICOM; some images lossy-compressed at the source"),
}


def event_detail(action: str, details: dict | None) -> str:
    """What the audit page adds under an event's label: a download's rendition (the original or
    a preview), or, for a lossless one of originals received lossy, what it held
    (``LOSSY_SOURCE_RENDITIONS``); for a tumor board whose review window ran out, when its
    participants' access ended; else nothing. Only names from this module (and a date and time
    read as one), never text taken from the details."""
    if action == BOARD_WINDOW_ENDED:
        return _access_ended_at((details or {}).get("ended_at"))
    rendition = (details or {}).get("rendition")
    if action in (DOWNLOAD_STARTED, DOWNLOAD_COMPLETED, DOWNLOAD_INCOMPLETE) and isinstance(rendition, str):
        lossy_source = (details or {}).get("lossy_source")
        if rendition == "lossless" and isinstance(lossy_source, str) and lossy_source in LOSSY_SOURCE_RENDITIONS:
            return str(LOSSY_SOURCE_RENDITIONS[lossy_source])
        return str(DOWNLOAD_RENDITIONS.get(rendition, ""))
    return ""


def _access_ended_at(value: Any) -> str:
    """"Participants' access ended at <time>" for a board whose review window ran out: the
    event is recorded when the sweep or a page first sees it, which may be later (``ended_at``, in
    the reader's time zone and format); nothing for a value that is not a date and time."""
    from datetime import datetime

    from django.utils import formats, timezone

    try:
        ended_at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return ""
    if ended_at is None or timezone.is_naive(ended_at):
        return ""
    return _("Participants' access ended at %(time)s") % {
        "time": formats.date_format(timezone.localtime(ended_at), "SHORT_DATETIME_FORMAT")}


#: what an event is about, by the name ``record`` stores (``target_type``, the model's name); a
#: type not listed is shown as stored (the trail outlives models)
TARGETS: dict[str, str] = {
    "user": pgettext_lazy("audit object", "Account"),
    "ssoconfig": pgettext_lazy("audit object", "Single sign-on settings"),
    "invitation": pgettext_lazy("audit object", "Invitation"),
    "organization": pgettext_lazy("audit object", "Organization"),
    "membership": pgettext_lazy("audit object", "Membership"),
    "patient": pgettext_lazy("audit object", "Patient"),
    "case": pgettext_lazy("audit object", "Case"),
    "casenote": pgettext_lazy("audit object", "Note"),
    "boardsession": pgettext_lazy("audit object", "Tumor board"),
    "attachment": pgettext_lazy("audit object", "Attachment"),
    "grant": pgettext_lazy("audit object", "Share"),
    "grantextension": pgettext_lazy("audit object", "Share extension"),
    "sharelink": pgettext_lazy("audit object", "Share link"),
    "sharingpolicy": pgettext_lazy("audit object", "Sharing policy"),
    "originalrequest": pgettext_lazy("audit object", "Request for the original"),
    "study": pgettext_lazy("audit object", "Study"),
    "series": pgettext_lazy("audit object", "Series"),
    "instance": pgettext_lazy("audit object", "Image"),
    "upload": pgettext_lazy("audit object", "Upload"),
    "ingestjob": pgettext_lazy("audit object", "Ingest"),
    "viewersession": pgettext_lazy("audit object", "Viewer session"),
    "rendition": pgettext_lazy("audit object", "Rendition"),
    "deidexport": pgettext_lazy("audit object", "De-identified export"),
}

#: who acted, when ``record`` names no person (``actor_type``; a person is named by their e-mail)
ACTORS: dict[str, str] = {
    "user": pgettext_lazy("audit actor", "Account"),
    "link": pgettext_lazy("audit actor", "Share link"),
    "anonymous": pgettext_lazy("audit actor", "Anonymous visitor"),
    "system": pgettext_lazy("audit actor", "System"),
}


def target_label(target_type: str) -> str:
    return str(TARGETS.get(target_type, target_type))


def actor_label(actor_type: str, stored: str) -> tuple[str, str]:
    """(name, reference) of an event's actor: the stored label when it names a person (their
    e-mail), else the actor type's name, with the share link's id when one is stored."""
    if stored.startswith("link:"):
        return str(ACTORS["link"]), stored[5:]
    if not stored or stored == actor_type or stored in ACTORS:
        return str(ACTORS.get(stored or actor_type, stored or actor_type)), ""
    return stored, ""
