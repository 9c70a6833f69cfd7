"""Writes for patients, cases, notes and tumor boards.

Security contract: every service here decides through ``apps.sharing.policy`` (``require`` raises
PermissionDenied and records the denial), gives or takes access only through
``apps.sharing.services.grant_create`` / ``grants_revoke``, and records what it changed through
``apps.audit.services.record`` with ids and figures only: never a patient's name, MRN or birth
date, never a note's text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import IO, TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import formats, timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from apps.audit.actions import PATIENT_UPDATED
from apps.audit.services import record
from apps.cases import selectors
from apps.cases.models import (
    BOARD_PARTICIPANT_ROLES,
    Attachment,
    AttachmentKind,
    BoardSession,
    BoardState,
    Case,
    CaseNote,
    CaseStatus,
    NoteKind,
    Patient,
    birth_date_in_range,
    board_ended,
    mrn_normalise,
)
from apps.core.forms import is_past, require_datetimes_in_range
from apps.core.i18n import Deferred
from apps.organizations.models import Membership, Organization
from apps.sharing import policy
from apps.sharing.models import REVOKED_BOARD_ENDED, REVOKED_CASE_CLOSED, GrantSource, Permission, ShareLink
from apps.sharing.policy import Action
from apps.sharing.services import grant_create, grants_case_title_keep, grants_revoke, share_link_revoke
from apps.sharing.usecases import UseCase

if TYPE_CHECKING:
    from uuid import UUID

    from django.http import HttpRequest

    from apps.accounts.models import User

#: the case fields an editor may change (case_update); everything else has its own service
CASE_EDITABLE = ("title", "referring_question", "referred_by", "service_line", "responsible_clinician",
                 "episode_start", "episode_end")


# --- edits made on what a form showed ---------------------------------------------------------

class ChangedMeanwhile(ValidationError):
    """An edit made on values that someone else changed since its form was shown (its
    ``version`` is not the stored row's, ``edit_version``): nothing is written, and the form is
    shown again with what is recorded now, to make the edit again on it. Without this the later
    save silently wrote the values its form still showed back over the other person's, and the
    trail named its author as having changed them."""

    def __init__(self) -> None:
        super().__init__(_("These details were changed by someone else meanwhile: here is what is recorded now; "
                           "make your correction again."), code="changed_meanwhile")


def edit_version(obj: Any, fields: Iterable[str]) -> str:
    """A token of the values of ``fields`` on ``obj`` (a stored row), as an edit form shows them:
    the form carries it, hidden (``forms.EditVersionMixin``), and the service compares it with
    the locked row's (``edit_version_check``). Keyed with the secret key, so that the page holds
    no plain hash of a patient's name and birth date for anyone to match guesses with."""
    values = [str(obj._meta.get_field(name).value_from_object(obj)) for name in fields]
    return salted_hmac("lightbox.cases.edit_version", json.dumps(values)).hexdigest()[:32]


def edit_version_check(obj: Any, fields: Iterable[str], version: str | None) -> None:
    """Raise ``ChangedMeanwhile`` when ``version`` (what the edit form showed) is not that of
    ``obj``, read on its locked row. No version (a form of before versions, a caller that shows
    no form) checks nothing."""
    if version and version != edit_version(obj, fields):
        raise ChangedMeanwhile()


# --- patients -------------------------------------------------------------------------------

class PatientDetailsDiffer(ValidationError):
    """The MRN is an existing patient's, and the name or birth date typed with it are not theirs:
    the case would be that patient's while whoever typed them meant someone else (or mistyped the
    MRN). ``patient``: the existing patient, for the form to name to those who may see who it is
    (the message itself names no one: an exception's text may reach a log)."""

    def __init__(self, patient: Patient) -> None:
        super().__init__(_("The name or birth date entered are not those of the patient already recorded "
                           "with this medical record number."), code="patient_differs")
        self.patient = patient


def _same_name(typed: str, recorded: str) -> bool:
    """Names compared as a person reads them: case and spacing aside."""
    return " ".join(typed.split()).casefold() == " ".join(recorded.split()).casefold()


def patient_details_differ(patient: Patient, *, name: str = "", birth_date: date | None = None) -> bool:
    """Whether a name or birth date typed (those left blank say nothing) are not ``patient``'s."""
    return bool((name.strip() and not _same_name(name, patient.name))
                or (birth_date is not None and birth_date != patient.birth_date))


def patient_get_or_create(*, organization: Organization, by: User, mrn: str, name: str = "",
                          birth_date: date | None = None, confirmed_patient: UUID | None = None,
                          request: HttpRequest | None = None) -> tuple[Patient, bool]:
    """The organization's patient with this MRN, created when new. PHI never leaves the
    organization: the lookup is by (organization, MRN) and the audit trail holds ids only. An MRN
    is matched without the blanks around it and whatever the case of its letters
    (``models.mrn_key``), and stored without those blanks. A birth date in the future, or more
    than 130 years ago (``birth_date_in_range``), is refused when it is entered: for a new
    patient, or one that is not the recorded patient's. The
    recorded patient's own birth date, typed as recorded, is theirs even when in the future (a
    record of before such dates were refused, or imported): opening a case for them is not
    refused until it is corrected (``Patient.birth_date_needs_correction``). The same new patient
    entered twice at once (a double click, two people with one referral) is one patient: the
    insert that loses the race on the unique (organization, MRN) takes the winner's.

    When the MRN is an existing patient's and the name or birth date given are not theirs
    (``patient_details_differ``), ``PatientDetailsDiffer`` is raised unless ``confirmed_patient``
    is that patient's public id (whoever typed them was shown that patient and confirmed it): the
    existing patient is used as recorded; what was typed is never written over it."""
    policy.require(by, Action.MANAGE_CASE, organization, request=request)
    mrn = mrn_normalise(mrn)
    if not mrn:
        raise ValidationError({"mrn": _("Enter the patient's medical record number.")})
    with transaction.atomic():
        patient = Patient.objects.for_org(organization.pk).with_mrn(mrn).first()
        if patient is None or birth_date != patient.birth_date:
            try:
                birth_date_in_range(birth_date)
            except ValidationError as exc:
                raise ValidationError({"birth_date": exc.error_list}) from None
        if patient is None:
            if not name.strip():
                raise ValidationError({"patient_name": _("No patient has this number yet: enter the patient's name.")})
            try:
                with transaction.atomic():  # a savepoint: the caller's transaction goes on after a lost race
                    patient = Patient.objects.create(organization=organization, mrn=mrn, name=name.strip(),
                                                     birth_date=birth_date)
            except IntegrityError:
                patient = Patient.objects.for_org(organization.pk).with_mrn(mrn).get()
            else:
                record(action="patient.created", actor=by, organization=organization, target=patient,
                       request=request)
                return patient, True
        if confirmed_patient != patient.public_id and patient_details_differ(patient, name=name,
                                                                            birth_date=birth_date):
            raise PatientDetailsDiffer(patient)
    return patient, False


#: what ``patient_update`` corrects. Not the MRN: it is the patient's key in the organization
#: (``one_mrn_per_org`` on ``mrn_key``), what a new case's MRN finds them by and what every study's
#: patient ID is compared with (``selectors.patient_id_flags``); a change would re-flag the images
#: of all their cases, or run into another patient's MRN (two records of one person, a merge)
PATIENT_EDITABLE = ("name", "birth_date")


def patient_update(*, case: Case, by: User, values: dict[str, Any], version: str | None = None,
                   request: HttpRequest | None = None) -> list[str]:
    """Correct the recorded name or birth date of ``case``'s patient: whoever may edit the case
    (MANAGE_CASE, as ``case_update``) and see who its patient is (VIEW_PATIENT_IDENTITY), both
    staff of its organization only. The details are the patient's, on all their cases there. A
    name is needed; a birth date in the future is refused (one recorded before such dates were
    refused is corrected here: ``Patient.birth_date_needs_correction``), and so is one more than
    ``BIRTH_DATE_MAX_AGE_YEARS`` ago (``birth_date_in_range``). ``version``: the
    ``edit_version`` of the details the form showed; when someone else changed them since,
    ``ChangedMeanwhile`` is raised and nothing is written. Returns the names of the fields
    changed, recorded as ``patient.updated`` with the case it was corrected from (the names only:
    the values are PHI)."""
    policy.require(by, Action.MANAGE_CASE, case, request=request)
    policy.require(by, Action.VIEW_PATIENT_IDENTITY, case, request=request)
    unknown = set(values) - set(PATIENT_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    values = dict(values)
    if "name" in values:
        values["name"] = (values["name"] or "").strip()
        if not values["name"]:
            raise ValidationError({"name": _("Enter the patient's name.")})
    if "birth_date" in values:
        try:
            birth_date_in_range(values["birth_date"])
        except ValidationError as exc:
            raise ValidationError({"birth_date": exc.error_list}) from None
    with transaction.atomic():
        # the row as stored, locked: two corrections at once are applied one after the other
        patient = Patient.objects.for_org(case.organization_id).select_for_update().get(pk=case.patient_id)
        edit_version_check(patient, PATIENT_EDITABLE, version)
        changed = [name for name, value in values.items() if getattr(patient, name) != value]
        if changed:
            for name in changed:
                setattr(patient, name, values[name])
            patient.full_clean(exclude=["organization", "mrn", "mrn_key"], validate_constraints=False)
            patient.save(update_fields=changed)
            record(action=PATIENT_UPDATED, actor=by, organization_id=case.organization_id, target=patient,
                   case=case, request=request, details={"fields": sorted(changed)})
    case.patient = patient
    return changed


def mrn_duplicates_record(*, duplicates: Iterable[selectors.MrnDuplicate]) -> int:
    """Record in each organization's trail the MRN renames that migrations cases 0004 and 0005
    made without recording them (``selectors.mrn_duplicates``): one ``patient.mrn_renamed`` per
    renamed patient, by the system, naming the patient that kept the MRN (ids only), recorded now
    (the rename's time is not known). A patient recorded already is skipped: run again, nothing
    is recorded twice. Returns how many were recorded."""
    from apps.audit.actions import PATIENT_MRN_RENAMED
    from apps.audit.models import AuditEvent

    recorded = 0
    for found in duplicates:
        patient = found.patient
        with transaction.atomic():
            if AuditEvent.objects.filter(organization_id=patient.organization_id, action=PATIENT_MRN_RENAMED,
                                         target_type="patient", target_id=str(patient.public_id)).exists():
                continue
            record(action=PATIENT_MRN_RENAMED, organization_id=patient.organization_id, target=patient,
                   actor_label="system",
                   details={"kept_by": str(found.kept_by.public_id) if found.kept_by is not None else None,
                            "by": "migration"})
            recorded += 1
    return recorded


# --- cases ----------------------------------------------------------------------------------

def _check_clinician(organization_id: int, user: User | None) -> None:
    """The responsible clinician is one the case form offers (``selectors.responsible_clinicians``):
    an active clinician or radiologist of the organization, never any member."""
    if user is not None and not selectors.responsible_clinicians(organization_id=organization_id) \
            .filter(pk=user.pk).exists():
        raise ValidationError({"responsible_clinician": _("Pick a clinician or radiologist of this organization.")})


def case_create(*, organization: Organization, by: User, patient: Patient, title: str,
                referring_question: str = "", referred_by: str = "", service_line: str = "",
                responsible_clinician: User | None = None, episode_start: date | None = None,
                episode_end: date | None = None, request: HttpRequest | None = None) -> Case:
    policy.require(by, Action.MANAGE_CASE, organization, request=request)
    if patient.organization_id != organization.pk:
        raise ValidationError(_("The patient belongs to another organization."))
    _check_clinician(organization.pk, responsible_clinician)
    case = Case(organization=organization, patient=patient, title=title, referring_question=referring_question,
                referred_by=referred_by, service_line=service_line, responsible_clinician=responsible_clinician,
                episode_start=episode_start, episode_end=episode_end, created_by=by)
    case.full_clean()
    with transaction.atomic():
        case.save()
        record(action="case.created", actor=by, organization=organization, target=case, request=request,
               details={"patient": str(patient.public_id)})
    return case


def case_update(*, case: Case, by: User, values: dict[str, Any], version: str | None = None,
                request: HttpRequest | None = None) -> list[str]:
    """Change the editable fields given; returns the names of those that changed (audited by
    name only: the old and new text may hold clinical detail). ``version``: the ``edit_version``
    of the fields the form showed; when someone else changed them since, ``ChangedMeanwhile`` is
    raised and nothing is written. ``case`` is read again on its locked row: two edits at once
    are applied one after the other, each compared with what the other wrote."""
    policy.require(by, Action.MANAGE_CASE, case, request=request)
    unknown = set(values) - set(CASE_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if "responsible_clinician" in values:
        _check_clinician(case.organization_id, values["responsible_clinician"])
    with transaction.atomic():
        case.refresh_from_db(fields=CASE_EDITABLE,
                             from_queryset=Case.objects.for_org(case.organization_id).select_for_update())
        edit_version_check(case, CASE_EDITABLE, version)
        changed = [name for name, value in values.items() if getattr(case, name) != value]
        if not changed:
            return []
        details: dict[str, Any] = {"fields": sorted(changed)}
        if "responsible_clinician" in changed:
            # an owner of the case for the policy (OWNER_NEEDS: deciding requests for originals,
            # managing its shares): who lost and who gained that is named, by account id
            details["responsible_clinician"] = {
                "before": _public_id(case.responsible_clinician), "after": _public_id(values["responsible_clinician"])}
        title_before = case.title
        for name in changed:
            setattr(case, name, values[name])
        case.full_clean()
        case.save(update_fields=[*changed, "updated_at"])
        if "title" in changed:  # what the shares that ended name it by: the title they had
            grants_case_title_keep(case=case, title=title_before)
        record(action="case.edited", actor=by, organization_id=case.organization_id, target=case,
               request=request, details=details)
    return changed


def _public_id(user: User | None) -> str | None:
    return str(user.public_id) if user is not None else None


def _links_revoke(*, case: Case, by: User, request: HttpRequest | None) -> int:
    """Every unrevoked share link onto a grant of this case, revoked one by one (audited)."""
    links = ShareLink.objects.filter(grant__case=case, revoked_at__isnull=True).select_related("grant__case")
    return sum(share_link_revoke(link=link, by=by, request=request) for link in links)


def case_close(*, case: Case, by: User, request: HttpRequest | None = None) -> int:
    """Close the episode of care: every grant (and share link) on the case is revoked now, with
    reason "case_closed". Reopening later does not revive them. Returns how many shares closing
    ended: those the confirmation page listed (``selectors.case_grants_closing_ends``), not the
    links onto them nor grants that had expired already (the audit event counts what was revoked)."""
    policy.require(by, Action.MANAGE_CASE, case, request=request)
    with transaction.atomic():
        now = timezone.now()
        # claim the transition: of two concurrent closes, one does the work
        if not Case.objects.filter(pk=case.pk, status=CaseStatus.OPEN).update(
                status=CaseStatus.CLOSED, closed_at=now, closed_by=by, updated_at=now):
            raise ValidationError(_("This case is already closed."))
        case.status, case.closed_at, case.closed_by = CaseStatus.CLOSED, now, by
        links = ShareLink.objects.filter(grant__case=case, revoked_at__isnull=True).count()
        # what the confirmation page listed, read before they are revoked: the user is told this
        ending = len(selectors.case_grants_closing_ends(case=case, now=now))
        # revoking a grant revokes its links too; _links_revoke catches any left on older grants
        revoked = grants_revoke(grants=case.grants.filter(revoked_at__isnull=True), by=by, reason=REVOKED_CASE_CLOSED,
                                request=request)
        _links_revoke(case=case, by=by, request=request)
        record(action="case.closed", actor=by, organization_id=case.organization_id, target=case,
               request=request, details={"grants_revoked": revoked, "links_revoked": links})
    return ending


def case_reopen(*, case: Case, by: User, request: HttpRequest | None = None) -> None:
    """Open a closed case again. Grants and links revoked on closing stay revoked: whoever needs
    access again is given it again, on purpose."""
    policy.require(by, Action.MANAGE_CASE, case, request=request)
    with transaction.atomic():
        if not Case.objects.filter(pk=case.pk, status=CaseStatus.CLOSED).update(
                status=CaseStatus.OPEN, closed_at=None, closed_by=None, updated_at=timezone.now()):
            raise ValidationError(_("This case is already open."))
        case.status, case.closed_at, case.closed_by = CaseStatus.OPEN, None, None
        record(action="case.reopened", actor=by, organization_id=case.organization_id, target=case,
               request=request)


# --- notes ----------------------------------------------------------------------------------

def note_add(*, case: Case, by: User, body: str, kind: str = NoteKind.NOTE,
             request: HttpRequest | None = None) -> CaseNote:
    """Write a note on the case (``Action.ADD_NOTE``; a refusal is recorded). Audited with its
    kind and length, never its text."""
    policy.require(by, Action.ADD_NOTE, case, request=request)
    body = body.strip()
    if not body:
        raise ValidationError({"body": _("Write the note first.")})
    if kind not in NoteKind.values:
        raise ValidationError({"kind": _("Unknown kind of note.")})
    with transaction.atomic():
        note = CaseNote.objects.create(organization_id=case.organization_id, case=case, author=by, kind=kind,
                                       body=body)
        record(action="note.added", actor=by, organization_id=case.organization_id, target=note, case=case,
               request=request, details={"kind": kind, "length": len(body)})
    return note


# --- attachments ----------------------------------------------------------------------------

ATTACHMENT_MAX_BYTES = 50 * 1024 * 1024
#: what may be attached, recognised by the file's first bytes (never by its name or the browser's word)
ATTACHMENT_TYPES = {b"%PDF-": "application/pdf", b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def _sniff(fileobj: IO[bytes]) -> str | None:
    start = fileobj.tell()
    head = fileobj.read(8)
    fileobj.seek(start)
    return next((ctype for magic, ctype in ATTACHMENT_TYPES.items() if head.startswith(magic)), None)


#: the longest ending after a last dot that is taken for an extension (".pdf", ".jpeg") and kept
#: whole when a name is shortened; a longer one is part of the name
_EXTENSION_MAX = 10


def _stored_file_name(filename: str) -> str:
    """The uploader's file name as stored: its last path part, shortened to fit the column when
    longer (browsers and scripts may send any length). The end of its stem goes, marked with "…";
    its extension stays, so the downloaded copy still opens in the right program."""
    limit = Attachment._meta.get_field("filename").max_length
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1] or "document"
    if len(name) <= limit:
        return name
    stem, _dot, extension = name.rpartition(".")
    if stem and 0 < len(extension) <= _EXTENSION_MAX:
        extension = "." + extension
    else:
        stem, extension = name, ""
    return stem[:limit - len(extension) - 1] + "…" + extension


def attachment_add(*, case: Case, by: User, fileobj: IO[bytes], filename: str, kind: str = AttachmentKind.REPORT,
                   request: HttpRequest | None = None) -> Attachment:
    """Store a report or annotated document on the case, encrypted (apps.imaging.blobs.put_blob_locked).
    Who may: whoever may write notes on it and see its documents (``Action.ATTACH_DOCUMENT``: not
    a share naming some of its studies, whose holder would not see what they attached; a refusal
    is recorded). Audited with ids and size only."""
    from apps.imaging.blobs import put_blob_locked

    policy.require(by, Action.ATTACH_DOCUMENT, case, request=request)
    if kind not in AttachmentKind.values:
        raise ValidationError({"kind": _("Unknown kind of document.")})
    content_type = _sniff(fileobj)
    if content_type is None:
        raise ValidationError({"file": _("Attach a PDF, PNG or JPEG file.")})
    start = fileobj.tell()
    size = fileobj.seek(0, 2) - start
    fileobj.seek(start)
    if size > ATTACHMENT_MAX_BYTES:
        raise ValidationError({"file": _("The file is larger than 50 MB.")})
    name = _stored_file_name(filename)
    with transaction.atomic():
        blob = put_blob_locked(fileobj)  # may be a study's image: the same bytes are stored once
        attachment = Attachment.objects.create(organization_id=case.organization_id, case=case, blob=blob, kind=kind,
                                               filename=name, content_type=content_type, size=blob.size,
                                               uploaded_by=by)
        record(action="attachment.added", actor=by, organization_id=case.organization_id, target=attachment,
               case=case, request=request, details={"kind": kind, "size": blob.size, "content_type": content_type})
    return attachment


def attachment_open(*, attachment: Attachment, by: User, request: HttpRequest | None = None) -> IO[bytes]:
    """The decrypted bytes of an attachment, for whoever may see the case's images (a report is
    clinical content: coordinators see status, not documents). Every download is audited."""
    from apps.imaging.blobs import open_blob

    policy.require(by, Action.VIEW_IMAGES, attachment, request=request)
    record(action="attachment.downloaded", actor=by, organization_id=attachment.organization_id,
           target=attachment, case=attachment.case, request=request,
           details={"kind": attachment.kind, "size": attachment.size})
    return open_blob(attachment.blob)


# --- tumor boards ---------------------------------------------------------------------------

def _check_board_members(organization: Organization, cases: Iterable[Case], participants: Iterable[User],
                         host: User) -> None:
    if any(c.organization_id != organization.pk for c in cases):
        raise ValidationError({"cases": _("Every case must belong to this organization.")})
    user_ids = {u.pk for u in participants} | {host.pk}
    roles = dict(Membership.objects.filter(organization=organization, is_active=True, user_id__in=user_ids)
                 .values_list("user_id", "role"))
    if user_ids - set(roles):
        raise ValidationError({"participants": _("Participants must be members of this organization "
                                                 "(invite external consultants first).")})
    if any(roles[u.pk] not in BOARD_PARTICIPANT_ROLES for u in participants):
        raise ValidationError({"participants": _("A patient cannot take part in a tumor board: they would "
                                                 "see every case on it.")})
    if not policy.can(host, Action.MANAGE_CASE, organization):
        raise ValidationError({"host": _("The host must be able to run tumor boards here.")})


def board_create(*, organization: Organization, by: User, host: User, title: str, meeting_at,
                 review_days: int, cases: Iterable[Case], participants: Iterable[User],
                 request: HttpRequest | None = None) -> BoardSession:
    policy.require(by, Action.MANAGE_CASE, organization, request=request)
    cases, participants = list(cases), list(participants)
    _check_board_members(organization, cases, participants, host)
    require_datetimes_in_range(meeting_at)
    _refuse_past_meeting(meeting_at)
    board = BoardSession(organization=organization, host=host, title=title, meeting_at=meeting_at,
                         review_days=review_days)
    board.full_clean()
    with transaction.atomic():
        board.save()
        board.cases.set(cases)
        board.participants.set(participants)
        record(action="board.created", actor=by, organization=organization, target=board, request=request,
               details={"cases": len(cases), "participants": len(participants)})
    return board


def _refuse_past_meeting(meeting_at) -> None:
    """A new meeting time in the past is refused (the board would be listed as scheduled for a
    meeting that cannot happen then); within ``PAST_GRACE`` it is taken as now."""
    if is_past(meeting_at):
        raise ValidationError({"meeting_at": _("The meeting time is in the past. Choose when the meeting will be "
                                               "held.")})


def board_update(*, board: BoardSession, by: User, host: User, title: str, meeting_at, review_days: int,
                 cases: Iterable[Case], participants: Iterable[User], request: HttpRequest | None = None) -> None:
    """Edit a board that has not started: once live, its grants stand for what it was.

    Whether it has started is read on its locked row, not on ``board`` (read when the edit page
    was): a start meanwhile refuses the edit, and a start now waits for it. Only the edited
    fields are written, never the state."""
    policy.require(by, Action.MANAGE_CASE, board, request=request)
    if board.state != BoardState.SCHEDULED:
        raise ValidationError(_("Only a scheduled board can be edited."))
    cases, participants = list(cases), list(participants)
    _check_board_members(board.organization, cases, participants, host)
    require_datetimes_in_range(meeting_at)
    if meeting_at != board.meeting_at:  # a board whose meeting time passed keeps it when edited
        _refuse_past_meeting(meeting_at)
    board.host, board.title, board.meeting_at, board.review_days = host, title, meeting_at, review_days
    board.full_clean()
    with transaction.atomic():
        if not BoardSession.objects.select_for_update().filter(pk=board.pk, state=BoardState.SCHEDULED).exists():
            raise ValidationError(_("Only a scheduled board can be edited."))
        board.save(update_fields=["host", "title", "meeting_at", "review_days"])
        board.cases.set(cases)
        board.participants.set(participants)
        record(action="board.edited", actor=by, organization_id=board.organization_id, target=board, request=request,
               details={"cases": len(cases), "participants": len(participants)})


def board_start(*, board: BoardSession, by: User, request: HttpRequest | None = None) -> int:
    """The host starts the meeting: each participant gets one "view" grant on each open case of
    the board, expiring at the end of the review window. Returns how many grants were made."""
    policy.require(by, Action.RUN_BOARD, board, request=request)
    with transaction.atomic():
        return _board_start(board=board, by=by, request=request)


def _board_start(*, board: BoardSession, by: User, request: HttpRequest | None) -> int:
    now = timezone.now()
    # claim the transition first: two clicks on "start" make one set of grants
    if not BoardSession.objects.filter(pk=board.pk, state=BoardState.SCHEDULED).update(
            state=BoardState.LIVE, started_at=now):
        raise ValidationError(_("This board has already started."))
    board.state, board.started_at = BoardState.LIVE, now
    expires_at = now + board.review_window
    # the cases' rows are locked, and their state read on them: a case being closed meanwhile is
    # skipped once its close commits, and one closed after waits and then revokes these grants
    # (else they would outlive the close and come back when the case is reopened)
    cases = [c for c in board.cases.select_for_update(of=("self",)).order_by("pk") if c.is_open]
    # participants must be members (as when the board was scheduled) who may take part: one whose
    # membership ended, or who became a patient account, since then gets nothing
    participants = list(selectors.board_grantees(board=board))
    grants = [
        # a tumor board review (its recipients' "Shared with me" and shared case name it so), not a custom share
        grant_create(case=case, grantee=user, permissions=[Permission.VIEW], expires_at=expires_at, by=by,
                     source=GrantSource.BOARD, use_case=UseCase.TUMOR_BOARD, starts_at=now, request=request,
                     board=board)
        for case in cases for user in participants
    ]
    board.grants.add(*grants)
    record(action="board.started", actor=by, organization_id=board.organization_id, target=board, request=request,
           details={"grants": len(grants), "cases": len(cases), "participants": len(participants),
                    "expires_at": expires_at.isoformat()})
    transaction.on_commit(lambda: _board_notify(board=board, users=participants, started=True))
    return len(grants)


#: what a board's participants are told when its meeting starts and ends (no PHI: not even the
#: board's title, which people write as they like, and the e-mail says no more; the in-app notice
#: names the board by its title when shown, ``Notification.message_shown``; the link leads to
#: the board's page)
BOARD_STARTED = gettext_noop("A tumor board meeting you take part in has started: you can open its cases now.")
BOARD_ENDED = gettext_noop("A tumor board meeting you took part in has ended: its cases are no longer open to you.")


def _board_notify(*, board: BoardSession, users: Iterable[User], started: bool) -> None:
    """Tell each participant (an in-app notice and an e-mail, ``sharing.services.notify``) that
    the meeting started or ended, with a link to its page: where its cases are, and once it
    ended, where it says that their access ended with it (they still see an ended board:
    ``policy.boards_seen_as_participant``). The host, who pressed the button, is not among them
    (``selectors.board_grantees``). Called once the start or end is committed: no e-mail is sent
    while the organization's audit chain is held."""
    from django.urls import reverse

    from apps.sharing.services import notify

    url = reverse("cases:board_detail", kwargs={"boardsession_id": board.public_id})
    for user in users:
        notify(user=user, organization_id=board.organization_id, verb="board.started" if started else "board.ended",
               url=url, message=Deferred(BOARD_STARTED if started else BOARD_ENDED), board=board)


def board_end(*, board: BoardSession, by: User, request: HttpRequest | None = None) -> int:
    """End the meeting: every grant it made is revoked now. Policy reads grants on each request,
    so a participant's next request is refused. Returns how many were revoked.

    The host may, and so may anyone who may manage cases in the board's organization
    (``Action.END_BOARD``): a board whose host left or was demoted mid-meeting can still be
    ended. The audit event names who ended it (its actor, and whether that was the host)."""
    policy.require(by, Action.END_BOARD, board, request=request)
    try:
        with transaction.atomic():
            return _board_end(board=board, by=by, request=request)
    except ValidationError:
        # a click after the review window ran out (a page open since): access ended with the
        # window, and the meeting is recorded as ended then (once), never at this later click
        board.refresh_from_db(fields=["state", "started_at", "review_days", "ended_at"])
        boards_window_ends_record(boards=[board])
        if board.ended_by_window:
            raise ValidationError(
                _("This meeting had already ended: its review window ran out on %(time)s, and its "
                  "participants' access ended then.")
                % {"time": formats.date_format(timezone.localtime(board.ended_at_shown),
                                               "SHORT_DATETIME_FORMAT")}) from None
        raise


def _board_end(*, board: BoardSession, by: User, request: HttpRequest | None) -> int:
    now = timezone.now()
    # a board past its review window is ended already (its grants expired: BoardSession.has_ended)
    if not BoardSession.objects.filter(pk=board.pk, state=BoardState.LIVE).exclude(board_ended(now)).update(
            state=BoardState.ENDED, ended_at=now):
        raise ValidationError(_("This board is not live."))
    board.state, board.ended_at = BoardState.ENDED, now
    # whoever held a grant of the meeting is told it ended (its participants, as it started)
    from apps.accounts.models import User

    told = list(User.objects.filter(pk__in=board.grants.filter(revoked_at__isnull=True)
                                    .values("grantee_id"), is_active=True))
    # the grants end with the meeting (their state says so, not "Revoked"), and their events name the board
    revoked = grants_revoke(grants=board.grants.all(), by=by, reason=REVOKED_BOARD_ENDED, request=request,
                            board=board)
    transaction.on_commit(lambda: _board_notify(board=board, users=told, started=False))
    record(action="board.ended", actor=by, organization_id=board.organization_id, target=board, request=request,
           details={"grants_revoked": revoked, "by_host": by.pk == board.host_id})
    return revoked


def boards_window_ends_record(*, boards: Iterable[BoardSession] | None = None, now=None) -> int:
    """Record once that each live board whose review window ran out without anyone ending it
    ended then: its state becomes ``ENDED`` with ``ended_at`` the window's end (when its grants
    expired, and so its participants' access ended), and ``board.window_ended`` is recorded by
    the system, naming that time. ``boards``: those a page is about to show (only those of them
    past their window, as read, cost anything); none: every such board (the periodic sweep,
    ``apps.sharing.tasks.share_expiries_record_task``). Whichever reads it first records it.

    Each board is claimed with a conditional UPDATE (still live, past its window) in the same
    transaction as its event: two requests, or a request and the sweep, at once record one event
    (the other's UPDATE matches no row), on PostgreSQL and SQLite alike, and a click on "End"
    meanwhile finds it no longer live. The boards given are updated in place (state and end
    time, as recorded by whoever did). Returns the number recorded."""
    now = now or timezone.now()
    if boards is None:
        due = list(BoardSession.objects.filter(board_ended(now), state=BoardState.LIVE).order_by("started_at", "pk"))
    else:
        due = [b for b in boards if b.state == BoardState.LIVE and b.started_at is not None
               and b.window_ends_at <= now]
    count = 0
    for board in due:
        ended_at = board.window_ends_at
        with transaction.atomic():
            claimed = BoardSession.objects.filter(
                board_ended(now), pk=board.pk, state=BoardState.LIVE, started_at=board.started_at,
                review_days=board.review_days).update(state=BoardState.ENDED, ended_at=ended_at)
            if claimed:
                record(action="board.window_ended", organization_id=board.organization_id, target=board,
                       actor_label="system",
                       details={"ended_at": ended_at.isoformat(), "review_days": board.review_days,
                                "grants_expired": board.grants.filter(revoked_at__isnull=True).count()})
                count += 1
        if claimed:
            board.state, board.ended_at = BoardState.ENDED, ended_at
        else:  # recorded meanwhile by another request (or ended): as it is now
            board.refresh_from_db(fields=["state", "ended_at"])
    return count
