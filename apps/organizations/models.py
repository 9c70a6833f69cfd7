from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.models import PublicIdModel
from apps.organizations.scoping import OrgScopedQuerySet


class Role(models.TextChoices):
    ORG_ADMIN = "org_admin", _("Organization admin")
    RADIOLOGIST = "radiologist", _("Radiologist")
    CLINICIAN = "clinician", _("Clinician")
    COORDINATOR = "coordinator", _("Coordinator")
    EXTERNAL_CONSULTANT = "external_consultant", _("External consultant")
    PATIENT = "patient", _("Patient")


def default_mfa_required_roles() -> list[str]:
    """By default org admins and external consultants must use a second factor."""
    return [Role.ORG_ADMIN.value, Role.EXTERNAL_CONSULTANT.value]


class OrganizationQuerySet(OrgScopedQuerySet["Organization"]):
    org_lookup = "id"
    visible_action = "view_organization"


class Organization(PublicIdModel):
    """A tenant: a hospital or clinic. Its policy settings bound what its members may do."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("short name"), max_length=60, unique=True)
    # --- policy settings (org admins edit them; later features read them) ---
    upload_max_bytes = models.BigIntegerField(
        _("largest upload (bytes)"), default=20 * 1024**3,
        help_text=_("Uploads larger than this are refused before any byte is stored."),
    )
    invitation_ttl_hours = models.PositiveIntegerField(
        _("invitation lifetime (hours)"), default=72,
    )
    anonymous_links_enabled = models.BooleanField(
        _("allow anonymous links"), default=False,
        help_text=_("Off by default: every link is tied to a signed-in recipient."),
    )
    # --- identity policy (apps.accounts reads these) ---
    password_login_allowed = models.BooleanField(
        _("staff may sign in with a password"), default=True,
        help_text=_("Turn off to make staff sign in through the organization's single sign-on. "
                    "External consultants always use a password and a second factor; patients, a password."),
    )
    mfa_required_roles = models.JSONField(
        _("roles that must use a second factor"), default=default_mfa_required_roles, blank=True,
        help_text=_("Everyone may enrol an authenticator app; these roles must."),
    )
    staff_idle_minutes = models.PositiveIntegerField(
        _("idle sign-out for staff (minutes)"), default=60,
    )
    external_idle_minutes = models.PositiveIntegerField(
        _("idle sign-out for consultants and patients (minutes)"), default=15,
    )
    # --- audit: when its chain got its first event (apps.audit.chain.append). verify_audit
    # reports an organization whose trail began and has no chain any more (the tables wiped)
    audit_started_at = models.DateTimeField(_("audit trail started"), null=True, blank=True, editable=False)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def save(self, *args, **kwargs):
        """An existing row's ``audit_started_at`` is never written back: an instance read before the
        organization's first event holds None, and saving it (the admin, a form) reset the note that
        ``verify_audit`` reads; on PostgreSQL a trigger refuses the change (audit migration 0009).
        It is set by the chain alone (``apps.audit.chain``)."""
        if (kwargs.get("update_fields") is None and not self._state.adding and not kwargs.get("force_insert")
                and self.pk is not None):
            kwargs["update_fields"] = [f.name for f in self._meta.concrete_fields
                                       if not f.primary_key and f.name != "audit_started_at"]
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(OrgScopedQuerySet["Membership"]):
    visible_action = "view_members"

    def active(self) -> MembershipQuerySet:
        return self.filter(is_active=True)


class Membership(PublicIdModel):
    """A user's role in one organization. A user may belong to several organizations."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    is_active = models.BooleanField(_("active"), default=True)
    #: when the membership was last deactivated (``services.membership_update``): for a while after
    #: (``LIGHTBOX_AUDIT_FORMER_MEMBER_DAYS``) the person's account events (sign-ins, failed ones,
    #: lockouts) are still recorded in this organization's trail (``apps.audit.services``). None:
    #: active, or (inactive) ended at a time not known (before this was kept, with no record of it
    #: in the trail): not recent, nothing of the person is recorded in this organization's trail
    deactivated_at = models.DateTimeField(_("deactivated at"), null=True, blank=True, editable=False)
    #: when the person last switched to this organization (the header's switcher): their next
    #: sign-in starts in the organization they last switched to, while that membership is active
    #: (``services.organization_at_sign_in``)
    last_switched_at = models.DateTimeField(_("last switched to this organization"), null=True, blank=True,
                                            editable=False)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["organization__name", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_user_and_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"
