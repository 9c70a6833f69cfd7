"""Patients and cases (episodes of care). Minimal core; the cases issue builds the case page,
notes, attachments and tumor boards on it."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import ExpressionWrapper, F, Func, Q
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from apps.core.forms import UPLOAD_NAME_MAX
from apps.core.models import PublicIdModel
from apps.organizations.models import Role
from apps.organizations.scoping import CaseLinkedQuerySet, OrgScopedQuerySet, WholeCaseQuerySet


def mrn_normalise(mrn: str | None) -> str:
    """An MRN as it is stored: the blanks around it dropped (its letters kept as first entered)."""
    return (mrn or "").strip()


def mrn_key(mrn: str | None) -> str:
    """The one rule for "this MRN": an MRN (or an image's patient ID) without the blanks around
    it and whatever the case of its letters ("demo-0001 " is DEMO-0001), folded by Unicode's
    caseless matching (canonical form, ``casefold``: "ΑΣ-1", "ας-1" and "ασ-1" are one MRN,
    "STRASSE" and "straße" too; "İD-1" is not "ID-1"). Computed here only, in Python: stored as
    ``Patient.mrn_key`` (``one_mrn_per_org`` is unique on it), and every lookup compares that
    column with this function's value (``mrn_matches``), so the database never folds letters
    itself: its LOWER() folds some letters otherwise than Python (PostgreSQL "İ" and "ς"; SQLite
    only ASCII letters), and the attach check, made in Python, then disagreed with it."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", mrn_normalise(mrn)).casefold())


def mrn_matches(mrn: str, *, field: str = "mrn_key") -> Q:
    """Rows whose patient has this MRN (``mrn_key``). ``field``: the path to the patient's
    ``mrn_key`` from the rows filtered (``patient__mrn_key`` from cases)."""
    return Q(**{field: mrn_key(mrn)})


class MrnKeyField(models.CharField):
    """``mrn_key`` of the row's ``mrn``, computed whenever the row is written (``save``,
    ``create``, ``bulk_create``): never set by hand. ``QuerySet.update(mrn=...)`` would leave it
    behind: an MRN is changed by saving the row."""

    def pre_save(self, model_instance, add):
        value = mrn_key(model_instance.mrn)
        setattr(model_instance, self.attname, value)
        return value


#: the oldest a patient is taken to be: a birth date further back is a typing slip (0001-01-01,
#: 1062 for 1962), refused by ``birth_date_in_range``. The one place this bound is decided
BIRTH_DATE_MAX_AGE_YEARS = 130


def birth_date_bounds() -> tuple[date, date]:
    """The earliest and latest birth date accepted today (the portal's own date): what
    ``birth_date_in_range`` refuses outside of, and the ``min``/``max`` of the forms' date inputs,
    so that a phone's date picker does not offer a date that would be refused."""
    today = timezone.localdate()
    try:
        earliest = today.replace(year=today.year - BIRTH_DATE_MAX_AGE_YEARS)
    except ValueError:  # 29 February, in a year that has none
        earliest = today.replace(year=today.year - BIRTH_DATE_MAX_AGE_YEARS, day=28)
    return earliest, today


def birth_date_in_range(value: date | None) -> None:
    """A patient's birth date is not after today, nor more than ``BIRTH_DATE_MAX_AGE_YEARS``
    before it (``birth_date_bounds``). Every form and service that takes a patient's birth date
    checks it with this (the model field's validator)."""
    if value is None:
        return
    earliest, latest = birth_date_bounds()
    if value > latest:
        raise ValidationError(_("The birth date cannot be in the future."), code="birth_date_future")
    if value < earliest:
        raise ValidationError(
            _("The birth date cannot be before %(earliest)s: check the year."), code="birth_date_too_early",
            params={"earliest": date_format(earliest, "SHORT_DATE_FORMAT")})


def birth_date_not_in_future(value: date | None) -> None:
    """The field's validator before the earliest birth date was bounded: migration 0004 names it.
    Use ``birth_date_in_range``."""
    if value is not None and value > timezone.localdate():
        raise ValidationError(_("The birth date cannot be in the future."), code="birth_date_future")


class PatientQuerySet(OrgScopedQuerySet["Patient"]):
    def with_mrn(self, mrn: str) -> PatientQuerySet:
        """The patient with this MRN (``mrn_matches``: blanks around it and case ignored)."""
        return self.filter(mrn_matches(mrn))


class Patient(PublicIdModel):
    """A patient of one organization. MRN, name and birth date are PHI: they never leave the
    organization in clear, never go into logs, task arguments or e-mails. One MRN is one patient
    of an organization, whatever the case of its letters (``one_mrn_per_org`` on ``mrn_key``, its
    folded form; it is stored without blanks around it, ``mrn_normalise``)."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField(_("medical record number"), max_length=64)
    #: ``mrn_key(mrn)``, kept by ``MrnKeyField``: what MRNs are matched and counted by. Up to three
    #: times the MRN's length (casefold makes "ﬃ" "ffi")
    mrn_key = MrnKeyField(max_length=3 * 64, editable=False)
    name = models.CharField(_("name"), max_length=200)
    birth_date = models.DateField(_("birth date"), null=True, blank=True, validators=[birth_date_in_range])

    objects = PatientQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "mrn_key"], name="one_mrn_per_org")]

    def __str__(self) -> str:  # ids only: str() ends up in logs and admin messages
        return f"Patient {self.public_id}"

    @property
    def birth_date_needs_correction(self) -> bool:
        """A birth date recorded in the future (entered before such dates were refused, or
        imported): shown as one to correct, and no reason to refuse what is done for the patient."""
        return self.birth_date is not None and self.birth_date > timezone.localdate()

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "mrn" in update_fields and "mrn_key" not in update_fields:
            kwargs["update_fields"] = [*update_fields, "mrn_key"]  # the key follows its MRN
        super().save(*args, **kwargs)


class CaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class CaseQuerySet(CaseLinkedQuerySet["Case"]):
    """Staff of the case's organization, plus anyone a live grant names (apps.sharing.policy)."""

    visible_action = "view_org_data"
    case_lookup = "id"

    def open(self) -> CaseQuerySet:
        return self.filter(status=CaseStatus.OPEN)


class Case(PublicIdModel):
    """An episode of care: why the images were sent, for whom, and until when."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="cases")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="cases")
    title = models.CharField(_("title"), max_length=200)
    referring_question = models.TextField(_("clinical question"), blank=True)
    referred_by = models.CharField(_("referred by"), max_length=200, blank=True,
                                   help_text=_("Who sent the case: a physician, a service or a hospital."))
    service_line = models.CharField(_("service line"), max_length=100, blank=True)
    responsible_clinician = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                              on_delete=models.SET_NULL, related_name="responsible_cases")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="created_cases")
    status = models.CharField(_("status"), max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    episode_start = models.DateField(_("episode start"), null=True, blank=True)
    episode_end = models.DateField(_("episode end"), null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status == CaseStatus.OPEN

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("cases:case_detail", kwargs={"case_id": self.public_id})


class CaseChildQuerySet(CaseLinkedQuerySet):
    """Rows that belong to one case: seen by whoever may see the case page (staff holding
    ``view_case`` in the organization, or a live grant on that very case)."""


class NoteKind(models.TextChoices):
    NOTE = "note", _("Note")
    REPORT = "report", _("Report")


class CaseNote(PublicIdModel):
    """A note or report on a case, with its author and time: the case's timeline. Notes are
    written once and never edited, so everyone reads the same text."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT,
                                     related_name="case_notes")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(_("kind"), max_length=16, choices=NoteKind.choices, default=NoteKind.NOTE)
    body = models.TextField(_("note"))

    objects = CaseChildQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["case", "created_at"])]

    def __str__(self) -> str:
        return f"Note {self.public_id}"


class BoardState(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    LIVE = "live", _("Live")
    ENDED = "ended", _("Ended")


#: the seed's table: a tumor board's review window is 5 to 7 days
REVIEW_DAYS_MIN, REVIEW_DAYS_MAX, REVIEW_DAYS_DEFAULT = 5, 7, 7

#: who may take part in a tumor board (and so be given view access to all of its cases): staff
#: and external consultants, never a patient account, whose access is its own education copies
BOARD_PARTICIPANT_ROLES = tuple(r for r in Role.values if r != Role.PATIENT)

#: who may be a case's responsible clinician (an owner of the case for the policy): the
#: organization's clinicians and radiologists (``selectors.responsible_clinicians``)
RESPONSIBLE_CLINICIAN_ROLES = (Role.CLINICIAN.value, Role.RADIOLOGIST.value)


class BoardSessionQuerySet(OrgScopedQuerySet["BoardSession"]):
    visible_action = "view_case"

    def visibility(self, user) -> Q:
        """Staff who see cases, plus a participant of a live board while it gives them access (a
        live grant it made them), and of an ended board whose meeting gave them access while they
        are still a member there (``policy.boards_seen_as_participant``)."""
        from apps.sharing import policy

        return super().visibility(user) | Q(id__in=policy.boards_seen_as_participant(user))


class BoardSession(PublicIdModel):
    """A tumor board: the cases of one meeting, a host, participants and a review window.

    Starting it gives every participant view access to every case through one grant each
    (``grants``, source "board"); ending it revokes those grants at once."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT,
                                     related_name="board_sessions")
    host = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="hosted_boards")
    title = models.CharField(_("title"), max_length=200)
    meeting_at = models.DateTimeField(_("meeting time"))
    review_days = models.PositiveSmallIntegerField(
        _("review window (days)"), default=REVIEW_DAYS_DEFAULT,
        validators=[MinValueValidator(REVIEW_DAYS_MIN), MaxValueValidator(REVIEW_DAYS_MAX)],
        help_text=_("How long participants keep view access after the meeting starts, unless it is ended."),
    )
    cases = models.ManyToManyField(Case, related_name="board_sessions", blank=True, verbose_name=_("cases"))
    participants = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="board_sessions", blank=True,
                                          verbose_name=_("participants"))
    state = models.CharField(_("state"), max_length=16, choices=BoardState.choices, default=BoardState.SCHEDULED)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    grants = models.ManyToManyField("sharing.Grant", related_name="board_sessions", blank=True)

    objects = BoardSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-meeting_at"]
        indexes = [models.Index(fields=["organization", "state"])]

    def __str__(self) -> str:
        return self.title

    @property
    def review_window(self) -> timedelta:
        return timedelta(days=self.review_days)

    @property
    def window_ends_at(self) -> datetime | None:
        """When the review window of a started meeting runs out: its grants expire then
        (``services.board_start``; a board's grants are never extended or renewed). None before
        it starts."""
        return self.started_at + self.review_window if self.started_at is not None else None

    @property
    def has_ended(self) -> bool:
        """Whether the meeting is over: ended by its host (``ENDED``), or live past its review
        window, which nobody ended: its grants expired then, and it is ended for everyone (its
        page, its participants' list, what it shows them), as ``board_ended`` says in queries.
        The first page or sweep that sees such a board records it ``ENDED`` at its window's end
        (``services.boards_window_ends_record``)."""
        if self.state == BoardState.ENDED:
            return True
        return self.state == BoardState.LIVE and self.window_ends_at is not None \
            and self.window_ends_at <= timezone.now()

    @property
    def is_live(self) -> bool:
        """Started, and neither ended nor past its review window (``has_ended``)."""
        return self.state == BoardState.LIVE and not self.has_ended

    @property
    def state_shown(self) -> BoardState:
        """The state its pages show: a live board past its review window is shown ``Ended``."""
        return BoardState.ENDED if self.has_ended else BoardState(self.state)

    @property
    def ended_at_shown(self) -> datetime | None:
        """When the meeting ended: when it was ended, or when its review window ran out, whichever
        came first. Its grants expired as the window ran out, so a board ended by hand after that
        (before such late ends were refused) ended then, not at the later click."""
        window_ends_at = self.window_ends_at
        if self.ended_at is not None:
            return min(self.ended_at, window_ends_at) if window_ends_at is not None else self.ended_at
        return window_ends_at if self.has_ended else None

    @property
    def ended_by_window(self) -> bool:
        """Whether the meeting ended because its review window ran out (nobody ended it before):
        whether recorded so yet (``services.boards_window_ends_record``) or not."""
        return self.has_ended and self.window_ends_at is not None and self.ended_at_shown == self.window_ends_at


def board_ended(now: datetime | None = None) -> Q:
    """The tumor boards whose meeting is over (``BoardSession.has_ended``): ended, or live past
    their review window (``started_at`` + ``review_days`` days, at or before ``now``): the
    query's copy of that rule, for SQLite and PostgreSQL alike."""
    now = now or timezone.now()
    window_end = ExpressionWrapper(F("started_at") + _DaysAsDuration(F("review_days")),
                                   output_field=models.DateTimeField())
    return Q(state=BoardState.ENDED) | Q(LessThanOrEqual(window_end, now), state=BoardState.LIVE,
                                         started_at__isnull=False)


class _DaysAsDuration(Func):
    """A number of days as a duration to add to a date and time: an interval on PostgreSQL; on
    SQLite, whose durations Django stores as microseconds, that many microseconds (Django's own
    ``integer * timedelta`` is refused there: "Invalid arguments for operator *")."""

    template = "(%(expressions)s * INTERVAL '1 day')"
    output_field = models.DurationField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="(%(expressions)s * 86400000000)", **extra_context)


class AttachmentQuerySet(WholeCaseQuerySet):
    """A case's reports and attachments: tied to none of its studies, so a grantee sees them only
    through a grant on the whole case; a share that names some studies of the case gives none
    of its documents (they may be about the others). Opening one is the policy's (VIEW_IMAGES
    on the attachment, ``apps.sharing.policy``), which says the same."""


class AttachmentKind(models.TextChoices):
    REPORT = "report", _("Radiology report")
    ANNOTATED = "annotated", _("Annotated images")
    OTHER = "other", _("Other document")


class Attachment(PublicIdModel):
    """A document on a case (a radiology report, an annotated PDF). Its bytes are stored
    encrypted and content-addressed like images (apps.imaging.blobs); this row says whose it is.
    The file name is the uploader's and may name the patient: it is shown in the organization's
    pages but never written to logs or audit details."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT,
                                     related_name="case_attachments")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="attachments")
    blob = models.ForeignKey("imaging.Blob", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("kind"), max_length=16, choices=AttachmentKind.choices, default=AttachmentKind.REPORT)
    filename = models.CharField(_("file name"), max_length=UPLOAD_NAME_MAX)  # longer names: shortened on upload
    content_type = models.CharField(max_length=100, default="application/pdf")
    size = models.BigIntegerField()
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Attachment {self.public_id}"
