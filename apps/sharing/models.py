"""Grants: who may do what with which case (or which of its studies), until when, how often.

A Grant names its recipient (a user, a group of users, an invited e-mail address bound on
acceptance, or nobody for an anonymous link), its scope (the case, or named studies of it, and
which renditions), its permissions, its lifetime and its download limit, and keeps its usage.
ShareLinks are URLs onto one grant; only the sha256 of their token is stored.
All access decisions stay in apps.sharing.policy; this module only stores."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.core import i18n
from apps.core.models import PublicIdModel
from apps.organizations.scoping import OrgScopedQuerySet
from apps.sharing.usecases import RecipientKind, UseCase

#: the largest count (download limit, use limit) the PositiveIntegerField columns hold on every database
COUNT_MAX = 2_147_483_647


class Permission(models.TextChoices):
    VIEW = "view", _("View")
    DOWNLOAD_PREVIEW = "download_preview", _("Download preview")
    DOWNLOAD_ORIGINAL = "download_original", _("Download original")
    RESHARE = "reshare", _("Share onward")


class GrantSource(models.TextChoices):
    SHARE = "share", _("Share")
    BOARD = "board", _("Tumor board")
    INVITATION = "invitation", _("Invitation")
    ORIGINAL_REQUEST = "original_request", _("Original DICOM request")


class ShareKind(models.TextChoices):
    """Who a share reaches, as the pages name it to its sharer (the review step, Share created):
    from how it was made (``GrantSource``), its recipient and its use case (``share_kind``)."""

    NAMED_PERSON = "named_person", _("Only the named recipient, signed in")
    GROUP = "group", _("A group: each of its members, signed in")
    TUMOR_BOARD = "tumor_board", _("A tumor board group: each of its members, signed in")
    INVITATION = "invitation", _("An invitation of an outside consultant: whoever accepts it at that e-mail "
                                 "address, signed in")
    PATIENT = "patient", _("A patient, signed in (the education copy)")
    ANONYMOUS = "anonymous", _("Anonymous link")
    BOARD_MEETING = "board_meeting", _("A participant of a tumor board meeting, signed in")
    CONSULTANT_INVITED = "consultant_invited", _("An outside consultant invited to the organization, signed in")
    ORIGINAL_APPROVED = "original_approved", _("An approved request for the original DICOM: its requester, "
                                               "signed in")


def share_kind(*, recipient_kind: str, use_case: str = UseCase.CUSTOM, source: str = GrantSource.SHARE) -> ShareKind:
    """The kind of a share made by ``source`` for a ``recipient_kind`` (a RecipientKind value)
    under the ``use_case`` template. A share made on the share page (source SHARE) is named by its
    recipient (a patient-education share goes to a patient); the others by how they were made."""
    made_by = {GrantSource.BOARD: ShareKind.BOARD_MEETING, GrantSource.INVITATION: ShareKind.CONSULTANT_INVITED,
               GrantSource.ORIGINAL_REQUEST: ShareKind.ORIGINAL_APPROVED}
    if source in made_by:
        return made_by[GrantSource(source)]
    if recipient_kind == RecipientKind.ANONYMOUS:
        return ShareKind.ANONYMOUS
    if use_case == UseCase.PATIENT_EDUCATION:
        return ShareKind.PATIENT
    if recipient_kind == RecipientKind.GROUP:
        return ShareKind.TUMOR_BOARD if use_case == UseCase.TUMOR_BOARD else ShareKind.GROUP
    if recipient_kind == RecipientKind.EMAIL:
        return ShareKind.INVITATION
    return ShareKind.NAMED_PERSON


class GrantQuerySet(OrgScopedQuerySet["Grant"]):
    def live(self, now: datetime | None = None) -> GrantQuerySet:
        """Not revoked, not expired, on an open case. Checked on every request: no cache."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now, starts_at__lte=now, case__status="open")

    def addressed_to(self, user) -> GrantQuerySet:
        """Grants naming ``user`` as grantee or as a member of the grantee group ("shared with
        me"). Recipients see their grants through this, not through visible_to (staff only)."""
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(models.Q(grantee=user) | models.Q(group_members=user)).distinct()


class Grant(PublicIdModel):
    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="grants")
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="grants")
    grantee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="grants")
    permissions = models.JSONField(default=list)  # a list of Permission values
    source = models.CharField(max_length=16, choices=GrantSource.choices, default=GrantSource.SHARE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    starts_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    revoke_reason = models.CharField(max_length=64, blank=True)
    # --- recipient beyond a single user ---
    group_members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="group_grants")
    group_name = models.CharField(max_length=120, blank=True)
    grantee_email = models.EmailField(blank=True)  # an invitation: bound to the user who accepts
    # --- template and scope ---
    use_case = models.CharField(max_length=32, choices=UseCase.choices, default=UseCase.CUSTOM)
    studies = models.ManyToManyField("imaging.Study", blank=True, related_name="grants",
                                     help_text="Named studies of the case; none = the whole case.")
    renditions = models.JSONField(default=list, blank=True)  # Rendition values; empty = as permissions allow
    mfa_required = models.BooleanField(default=False)
    download_limit = models.PositiveIntegerField(null=True, blank=True)
    renewed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="renewals")
    # --- usage (kept so "expired unused" and "downloaded again within 24 h" can be reported) ---
    first_opened_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    open_count = models.PositiveIntegerField(default=0)
    download_count = models.PositiveIntegerField(default=0)
    # the expires_at whose passing was recorded (share.expired); an extension past it re-arms it
    expiry_recorded_for = models.DateTimeField(null=True, blank=True)
    # the case's title when this share ended, kept once the case is renamed after that
    # (``services.grants_case_title_keep``): what "Shared with me" names an ended share's case by
    # where its holder no longer sees the case (``policy.grants_naming_case``), so that a new title,
    # which may name the patient, is not learnt after access ended. None: not renamed since it
    # ended (or not ended), the case's title is still the one they had; "": not known (a share that
    # had ended before titles were kept, its case changed since: migration 0014), named by a
    # neutral label. Null and "" differ, hence a nullable text column.
    case_title_at_end = models.CharField(max_length=200, null=True, blank=True,  # noqa: DJ001
                                         editable=False)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["grantee", "expires_at"])]

    def __str__(self) -> str:
        return f"Grant {self.public_id}"

    def is_live(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return (self.revoked_at is None and self.starts_at <= now < self.expires_at
                and self.case.status == "open")

    @property
    def over_download_limit(self) -> bool:
        return self.download_limit is not None and self.download_count >= self.download_limit

    @property
    def is_anonymous(self) -> bool:
        return self.grantee_id is None and not self.grantee_email and not self.group_name

    @property
    def recipient_kind(self) -> str:
        """A RecipientKind value: a named user (an accepted invitation too), an e-mail address
        not accepted yet, a group, or nobody (an anonymous link)."""
        if self.is_anonymous:
            return RecipientKind.ANONYMOUS
        if self.grantee_id is not None:
            return RecipientKind.USER
        return RecipientKind.EMAIL if self.grantee_email else RecipientKind.GROUP

    @property
    def purpose_label(self) -> str:
        """What the lists name this grant by: its template (use case), or how it was made when a
        tumor board's meeting or an approved request for the original made it. Such a grant
        carries its parent's template, whose own terms (a tumor board review's original DICOM,
        say) are not what it gives: a board meeting's grant named "Tumor board review" read as if
        it gave the original, and an approval beside its share looked like a second, identical one."""
        if self.source == GrantSource.BOARD:
            return str(_("Tumor board meeting"))
        if self.source == GrantSource.ORIGINAL_REQUEST:
            return str(_("Original DICOM (approved request)"))
        return str(self.get_use_case_display())

    @property
    def kind(self) -> ShareKind:
        """Who this share reaches (``share_kind``)."""
        return share_kind(recipient_kind=self.recipient_kind, use_case=self.use_case, source=self.source)

    def state(self, now: datetime | None = None) -> str:
        """active, scheduled, use_limit_reached, revoked, ended_with_board, ended_case_closed,
        expired_used or expired_unused: what every list, page and the API say of it
        (``selectors.with_state``, the API's ``state``). A tumor board's grants are revoked when its
        meeting ends (reason ``REVOKED_BOARD_ENDED``), a case's when it is closed (reason
        ``REVOKED_CASE_CLOSED``): they ended with the meeting or the episode of care, nobody revoked
        them by hand (QA: Shared with me said "Revoked" of a closed case's share). An
        anonymous link opened as many times as it allows (``links_used_up``) is not "active":
        nobody new can open it (found by QA: the list said Active, a 4th visitor was refused)."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return _ENDED_BY_REASON.get(self.revoke_reason, GrantState.REVOKED)
        if self.expires_at <= now or self.case.status != "open":
            return GrantState.EXPIRED_USED if self.open_count or self.download_count else GrantState.EXPIRED_UNUSED
        if self.starts_at > now:
            return GrantState.SCHEDULED
        if self.links_used_up:
            return GrantState.USE_LIMIT_REACHED
        return GrantState.ACTIVE

    @property
    def links_used_up(self) -> bool:
        """An anonymous link's share whose every link (not revoked) has been opened as many times
        as its use limit allows: no one new can open it (``services.share_link_refusal`` refuses
        with ``used_up``). The browsers that opened it keep what it gives until it expires or is
        revoked. A share to a person or a group is reached without its link (Shared with me): its
        link's use limit never ends it. Reads the grant's links (prefetched by the lists); none for
        a share that is not an anonymous link's."""
        if self.pk is None or not self.is_anonymous:
            return False
        links = [link for link in self.links.all() if link.revoked_at is None]
        return bool(links) and all(link.max_uses is not None and link.use_count >= link.max_uses
                                   for link in links)


class GrantState(models.TextChoices):
    ACTIVE = "active", _("Active")
    SCHEDULED = "scheduled", _("Not started yet")
    #: an anonymous link opened as many times as it allows (``Grant.links_used_up``)
    USE_LIMIT_REACHED = "use_limit_reached", _("Use limit reached")
    EXPIRED_UNUSED = "expired_unused", _("Expired, never opened")
    EXPIRED_USED = "expired_used", _("Expired, used")
    REVOKED = "revoked", _("Revoked")
    ENDED_WITH_BOARD = "ended_with_board", _("Ended with the meeting")
    ENDED_CASE_CLOSED = "ended_case_closed", _("Ended: the case was closed")
    #: not a grant's own state: what its holder's lists say of a grant that has not ended but
    #: gives them nothing now (``policy.grants_ended_for_holder``: a tumor board's grant to
    #: someone since made a patient account there), set by ``selectors.with_state(holder=...)``
    NO_LONGER_AVAILABLE = "no_longer_available", _("No longer available to you")


#: the ``revoke_reason`` of the grants a tumor board's meeting gave, revoked when it ends
#: (``apps.cases.services.board_end``): their state says they ended with the meeting
REVOKED_BOARD_ENDED = "board_ended"
#: the ``revoke_reason`` of the grants on a case when it is closed (``apps.cases.services.case_close``)
REVOKED_CASE_CLOSED = "case_closed"
#: a revoked grant's state by its ``revoke_reason``: ended with something, not revoked by hand
_ENDED_BY_REASON = {REVOKED_BOARD_ENDED: GrantState.ENDED_WITH_BOARD, REVOKED_CASE_CLOSED: GrantState.ENDED_CASE_CLOSED}


class GrantExtension(models.Model):
    """One extension of a grant's expiry, with the written reason it needs."""

    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="extensions")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    previous_expires_at = models.DateTimeField()
    new_expires_at = models.DateTimeField()
    reason = models.TextField()

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"Extension of grant {self.grant_id}"


class GrantDownload(models.Model):
    """One counted download of one package under a grant. A resumed transfer of the same package
    (the same key and the same version of it, by the same user, or in the same browser session
    through the same link, before its last byte went out) touches this row instead of adding one,
    so it counts once; a fresh download adds a row, so "downloaded again within 24 h" is two rows
    of one package close together."""

    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="downloads")
    package_key = models.CharField(max_length=200)
    # who began it (a signed-in recipient, or a link holder through this link): after the grant
    # expires only they may resume it, which matters for a group grant's members
    by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    by_link = models.ForeignKey("ShareLink", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # the browser session that began it (a digest of the session key, never the key): a link
    # holder's transfer is theirs in that session only (anyone else holding the same link begins
    # a counted download), and a Range request without If-Range continues only a transfer begun
    # in its own session, a signed-in person's too (their other device's may be of another version)
    by_session = models.CharField(max_length=64, blank=True, default="", editable=False)
    started_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    resumes = models.PositiveIntegerField(default=0)
    # bytes sent under it, its resumes included (a resume re-sends what the last one sent and the
    # client did not keep: never exact)
    bytes_sent = models.BigIntegerField(default=0, editable=False)
    # when it was finished: the package's last byte went out, or twice the package was sent under
    # it (ranges that never reach the end); a finished transfer is not resumed (a new one is counted)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # the package counted (its strong ETag, its size in bytes): only a Range request for that
    # same package continues the transfer (a package that changed since, a study added to the
    # case or its previews made, is a new download, counted), and what may go out under it is
    # bounded by that size
    package_etag = models.CharField(max_length=64, blank=True, default="", editable=False)
    package_bytes = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["started_at"]
        indexes = [models.Index(fields=["grant", "package_key", "started_at"])]

    def __str__(self) -> str:
        return f"Download under grant {self.grant_id}"


class ShareLinkQuerySet(OrgScopedQuerySet["ShareLink"]):
    pass


class SecondFactor(models.TextChoices):
    NONE = "", _("None")
    PASSCODE = "passcode", _("Passcode")
    BIRTH_DATE = "birth_date", _("Patient's birth date")


class ShareLink(PublicIdModel):
    """A URL onto one grant. The token (>= 128 random bits) is shown once; only its sha256 is
    stored, so a database leak yields no working links. Identity-linked unless ``anonymous``."""

    MAX_FAILED_ATTEMPTS = 5

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT,
                                     related_name="share_links")
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True)
    anonymous = models.BooleanField(default=False)
    second_factor = models.CharField(max_length=16, choices=SecondFactor.choices, blank=True, default="")
    passcode_hash = models.CharField(max_length=200, blank=True)
    failed_attempts = models.PositiveIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ShareLink {self.public_id}"

    @property
    def opens_at(self) -> datetime:
        """When the link opens: its "not before", or its grant's start if that is later (before
        either, it is refused as not yet open, ``services.share_link_refusal``)."""
        return max(t for t in (self.not_before, self.grant.starts_at) if t is not None)


class SharingPolicyQuerySet(OrgScopedQuerySet["SharingPolicy"]):
    pass


class SharingPolicy(PublicIdModel):
    """An organization's sharing defaults and maxima. They may only narrow the code's table
    (apps.sharing.usecases.TEMPLATES). Anonymous links are switched on by
    Organization.anonymous_links_enabled; their lifetime, download limit and whether they may carry
    the original DICOM are set here."""

    organization = models.OneToOneField("organizations.Organization", on_delete=models.CASCADE,
                                        related_name="sharing_policy")
    #: {use_case: {"default_hours": n, "max_hours": n}}
    template_settings = models.JSONField(default=dict, blank=True)
    anonymous_max_hours = models.PositiveIntegerField(_("anonymous link lifetime (hours)"), default=24)
    anonymous_download_limit = models.PositiveIntegerField(_("anonymous link download limit"), default=3)
    #: whether an anonymous link may carry the identified original DICOM at all; even then only a
    #: link with a passcode or the birth-date check (``policy.anonymous_original_refusal``), read
    #: live at each download, so turning it off stops such links at once
    anonymous_allow_original = models.BooleanField(
        _("allow the original DICOM on anonymous links"), default=False,
        help_text=_("Off: anonymous links give previews only. On: an anonymous link may also give the "
                    "identified original DICOM, but only when it asks for a passcode or the patient's birth date."))
    original_approval_max_hours = models.PositiveIntegerField(_("original DICOM approval lifetime (hours)"),
                                                              default=48)

    objects = SharingPolicyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"SharingPolicy {self.public_id}"


class OriginalRequestQuerySet(OrgScopedQuerySet["OriginalRequest"]):
    pass


class OriginalRequestStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a decision")
    APPROVED = "approved", _("Approved")
    DECLINED = "declined", _("Declined")
    # closed without a decision because the share it was asked under ended (revoked, the case
    # closed, a board's end, the requester's membership or group place ended), or ran out and the
    # requester asked again under another share of the case (superseded): nobody declined it
    WITHDRAWN = "withdrawn", _("Withdrawn (the share ended)")


class OriginalRequest(PublicIdModel):
    """A preview recipient asks for the original DICOM, with a reason. The study's owner or a
    radiologist approves (a new, short grant with download_original) or declines; one still
    waiting when the share it was asked under ends is withdrawn (``services``)."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT,
                                     related_name="original_requests")
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="original_requests")
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="original_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=OriginalRequestStatus.choices,
                              default=OriginalRequestStatus.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    approved_grant = models.ForeignKey(Grant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    objects = OriginalRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # one request a person and case waits for a decision (``services._original_requests_supersede``
            # closes the one a new request replaces before it is written); pairs made before that
            # rule were closed by migration 0015
            models.UniqueConstraint(fields=["case", "requested_by"], condition=models.Q(status="pending"),
                                    name="one_pending_original_request"),
        ]

    def __str__(self) -> str:
        return f"OriginalRequest {self.public_id}"


class Notification(models.Model):
    """An in-app notice to one user. Text carries no PHI: ids and links only. ``case`` or
    ``board``: what it is about, named by its title when the notice is shown in the app
    (``message_shown``), as the person's lists name it; the title is never copied into the text,
    which is also the e-mail's (a case's title is free text that may name the patient)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    organization = models.ForeignKey("organizations.Organization", null=True, blank=True,
                                     on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    verb = models.CharField(max_length=64)
    message = models.CharField(max_length=300)  # English: written by ``notify`` in a task or for another reader
    message_parts = models.JSONField(default=list, blank=True, editable=False)  # apps.core.i18n
    url = models.CharField(max_length=300, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    board = models.ForeignKey("cases.BoardSession", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")

    #: whether the reader may be shown the title of the board or case it is about, decided for
    #: the page that lists the notice (``policy.notices_naming``, ``selectors.notifications_for``):
    #: not decided, not named
    names_what_about = False
    #: the title to name its case by instead of the case's as it is now, decided with
    #: ``names_what_about`` (``selectors.notifications_for``): the one a share of the reader's that
    #: ended when the case was closed names it by in "Shared with me"; None: the case's own
    case_title_shown: str | None = None

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.verb

    @property
    def message_shown(self) -> str:
        """The message in the reader's language (not the language of whoever caused it), after
        the title of the board or case it is about (two boards' "has started" told apart): read
        from the board or case as it is now, nothing when it was deleted, nor where the reader no
        longer sees it (``names_what_about``: a decider who left the organization, a share that
        ended; the title, renamed since, may name the patient)."""
        text = i18n.translate(i18n.restore(self.message, self.message_parts))
        if not self.names_what_about:
            return text
        if self.board_id is not None and self.board is not None:
            return gettext("Tumor board “%(title)s”: %(message)s") % {"title": self.board.title, "message": text}
        if self.case_id is not None and self.case is not None:
            title = self.case_title_shown if self.case_title_shown is not None else self.case.title
            return gettext("Case “%(title)s”: %(message)s") % {"title": title, "message": text}
        return text


class ShareConfirmation(models.Model):
    """A share review's one-time confirmation token, claimed: a row is inserted (its hash unique)
    before the share is made, so that of two confirmations of one review sent at the same moment
    (a reload while the first still runs, two tabs) exactly one makes the share; the other's
    insert fails and it is told the share is made or being made (``share_confirmation_claim``).
    ``grant_public_id``: the share it made, once made; the row is removed if nothing was made, so
    that the confirmation may be sent again. Ids only: nothing of the share's terms or case."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    grant_public_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"ShareConfirmation {self.pk}"
