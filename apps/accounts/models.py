from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _

from apps.core.models import PublicIdModel
from apps.organizations.models import Role
from apps.organizations.scoping import OrgScopedQuerySet


def new_security_stamp() -> str:
    return secrets.token_hex(16)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who signs in with an e-mail address. Roles live on Membership, per organization."""

    username = None  # type: ignore[assignment]
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(_("e-mail address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    # Part of every session's auth hash: changing it ends all of the user's sessions at once
    # (password reset, MFA reset), whatever the session backend.
    security_stamp = models.CharField(max_length=32, default=new_security_stamp, editable=False)
    #: the language of the portal's pages on any device this person signs in on, and of e-mails
    #: others' actions send them; set by the language switcher, at sign-in and from an invitation
    language = models.CharField(_("language"), max_length=8, blank=True, choices=settings.LANGUAGES)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.full_name or self.email

    def save(self, *args: object, **kwargs: object) -> None:
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        key_salt = "apps.accounts.models.User.get_session_auth_hash"
        return salted_hmac(key_salt, f"{self.password}|{self.security_stamp}", secret=secret,
                           algorithm="sha256").hexdigest()


class SSOConfigQuerySet(OrgScopedQuerySet["SSOConfig"]):
    visible_action = "manage_organization"


class SSOConfig(PublicIdModel):
    """One organization's OpenID Connect sign-in for its staff. The client secret is stored
    encrypted (apps.accounts.crypto); it is decrypted only to talk to the provider."""

    organization = models.OneToOneField("organizations.Organization", on_delete=models.CASCADE,
                                        related_name="sso_config")
    enabled = models.BooleanField(_("enabled"), default=True)
    issuer = models.URLField(_("issuer URL"), max_length=300,
                             help_text=_("The provider's issuer, e.g. https://login.hospital.example/realms/staff"))
    client_id = models.CharField(_("client id"), max_length=200)
    client_secret_encrypted = models.TextField(blank=True, editable=False)
    allowed_domains = models.CharField(
        _("allowed e-mail domains"), max_length=500,
        help_text=_("Comma-separated, e.g. hospital.example, radiology.hospital.example"))

    objects = SSOConfigQuerySet.as_manager()

    def __str__(self) -> str:
        return f"SSO {self.organization_id}"

    @property
    def provider_id(self) -> str:
        """The allauth provider id (URL segment): /accounts/oidc/<provider_id>/login/."""
        return f"org-{self.organization.slug}"

    @property
    def issuer_host(self) -> str:
        """The host name of the provider (its issuer's), where the person types their password:
        named on the pages that send them there, so that they see whose sign-in it is (an
        organization's administrator sets the issuer; the portal's own address is no warrant)."""
        return urlsplit(self.issuer).hostname or ""

    @property
    def domains(self) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in self.allowed_domains.replace(";", ",").split(",")
                if d.strip()]

    def allows_email(self, email: str) -> bool:
        return email.rpartition("@")[2].lower() in self.domains

    @property
    def client_secret(self) -> str:
        from apps.accounts.crypto import decrypt

        return decrypt(self.client_secret_encrypted) if self.client_secret_encrypted else ""

    @client_secret.setter
    def client_secret(self, value: str) -> None:
        from apps.accounts.crypto import encrypt

        self.client_secret_encrypted = encrypt(value) if value else ""


class InvitationKind(models.TextChoices):
    MEMBER = "member", _("Consultant or staff")
    PATIENT = "patient", _("Patient")


class InvitationQuerySet(OrgScopedQuerySet["Invitation"]):
    visible_action = "view_members"

    def pending(self, now: datetime | None = None) -> InvitationQuerySet:
        now = now or timezone.now()
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)


class Invitation(PublicIdModel):
    """A single-use, expiring invitation to join an organization with a role (and, for a
    consultant, to see named cases; for a patient, their own portal).

    Only the sha256 of the token is stored: the link in the e-mail is the only copy."""

    MAX_FAILED_ATTEMPTS = 5

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE,
                                     related_name="invitations")
    kind = models.CharField(max_length=16, choices=InvitationKind.choices, default=InvitationKind.MEMBER)
    email = models.EmailField(_("e-mail address"))
    role = models.CharField(_("role"), max_length=32, choices=Role.choices, default=Role.EXTERNAL_CONSULTANT)
    #: the language of the invitation e-mail, and of the account made by accepting it
    language = models.CharField(_("language"), max_length=8, blank=True, choices=settings.LANGUAGES)
    cases = models.ManyToManyField("cases.Case", blank=True, related_name="invitations")
    patient = models.ForeignKey("cases.Patient", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="invitations")
    #: a patient invitation's case, the one it was sent from (None: a member invitation, or a
    #: patient invitation made before it was recorded, or whose case was deleted): sending it
    #: again asks that this case is still open and still the sender's to share
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="patient_invitations")
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="accepted_invitations")
    revoked_at = models.DateTimeField(null=True, blank=True)
    failed_attempts = models.PositiveIntegerField(default=0)  # wrong birth dates
    locked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation {self.public_id}"


class SupersededInvitationToken(models.Model):
    """The sha256 of an invitation's earlier token, replaced by "Send again" (its link no longer
    works): kept so that the earlier e-mail's link says that a newer e-mail was sent, rather than
    that it was mistyped. Only the digest, as for the invitation's own token."""

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="superseded_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    superseded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Superseded token of invitation {self.invitation_id}"


class SSOEnrolledFactor(models.Model):
    """A second factor (an authenticator, or recovery codes) enrolled in a session an organization's
    single sign-on opened (``apps.accounts.mfa.sso_enrolled_mark``): that organization's provider,
    which its admin runs, could have opened the session and enrolled it, so it is no proof against
    that provider (``apps.sharing.policy.sso_factor_counts``). A code from it entered in a session
    that provider did not open (the person's password) confirms it: the mark goes
    (``mfa.sso_enrolled_confirm``). Goes with its device (a reset, new recovery codes). A factor
    enrolled before this existed has no mark: it counts as enrolled outside single sign-on."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE, related_name="+")
    totp_device = models.OneToOneField("otp_totp.TOTPDevice", null=True, blank=True, on_delete=models.CASCADE,
                                       related_name="lightbox_sso_enrolled")
    static_device = models.OneToOneField("otp_static.StaticDevice", null=True, blank=True,
                                         on_delete=models.CASCADE, related_name="lightbox_sso_enrolled")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(totp_device__isnull=False, static_device__isnull=True)
            | models.Q(totp_device__isnull=True, static_device__isnull=False),
            name="sso_enrolled_factor_one_device")]

    def __str__(self) -> str:
        return f"Second factor enrolled through the single sign-on of organization {self.organization_id}"
