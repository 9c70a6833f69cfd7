"""Patients and cases (episodes of care). Minimal core; the cases issue builds the case page,
notes, attachments and tumor boards on it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.core.models import PublicIdModel
from apps.organizations.scoping import OrgScopedQuerySet


class PatientQuerySet(OrgScopedQuerySet["Patient"]):
    pass


class Patient(PublicIdModel):
    """A patient of one organization. MRN, name and birth date are PHI: they never leave the
    organization in clear, never go into logs, task arguments or e-mails."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField(_("medical record number"), max_length=64)
    name = models.CharField(_("name"), max_length=200)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "mrn"], name="one_mrn_per_org")]

    def __str__(self) -> str:  # ids only: str() ends up in logs and admin messages
        return f"Patient {self.public_id}"


class CaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class CaseQuerySet(OrgScopedQuerySet["Case"]):
    def visible_to(self, user):  # type: ignore[override]
        """Staff of the case's organization, plus anyone a live grant names (apps.sharing.policy)."""
        from apps.sharing import policy

        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(
            Q(organization__in=policy.org_ids_where(user, self.visible_action))
            | Q(id__in=policy.granted_case_ids(user))
        )

    def open(self) -> CaseQuerySet:
        return self.filter(status=CaseStatus.OPEN)


class Case(PublicIdModel):
    """An episode of care: why the images were sent, for whom, and until when."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="cases")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="cases")
    title = models.CharField(_("title"), max_length=200)
    referring_question = models.TextField(_("clinical question"), blank=True)
    service_line = models.CharField(_("service line"), max_length=100, blank=True)
    responsible_clinician = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                              on_delete=models.SET_NULL, related_name="responsible_cases")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="created_cases")
    status = models.CharField(_("status"), max_length=16, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    episode_start = models.DateField(_("episode start"), null=True, blank=True)
    episode_end = models.DateField(_("episode end"), null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status == CaseStatus.OPEN
