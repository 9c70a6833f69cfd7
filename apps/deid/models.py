"""De-identified exports of a study (PS3.15 Annex E basic profile, ``apps.deid.profile``).

One ``DeidExport`` per export a staff member starts: its state (queued, running, ready,
failed), the pseudonym that replaces the patient's name and ID, the key that maps UIDs for this
export, and its totals. One ``DeidExportFile`` per instance of the study: exported (a new
encrypted blob, with sha256 and CRC-32 so the zip's layout is known before its first byte) or
excluded with its reason. Rows name instances and blobs, never file names or patient data.

Rows are visible to the organization's staff (``view_org_data``), never through a grant; what
an export holds and its download need ``export_deidentified`` (apps.sharing.policy).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.models import Explained, PublicIdModel
from apps.deid.profile import Reason
from apps.organizations.scoping import OrgScopedQuerySet

#: what every exported file and the package are labelled
LABEL = _("De-identified (PS3.15 Annex E basic profile)")


class State(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("De-identifying")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


class Outcome(models.TextChoices):
    EXPORTED = "exported", _("Exported")
    EXCLUDED = "excluded", _("Excluded")


def _new_key() -> bytes:
    return secrets.token_bytes(32)


class DeidExportQuerySet(OrgScopedQuerySet):
    visible_action = "view_org_data"   # staff only: a grant never shows an export

    def finished(self) -> DeidExportQuerySet:
        return self.filter(state__in=[State.READY, State.FAILED])


class DeidExport(PublicIdModel, Explained):
    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="+")
    study = models.ForeignKey("imaging.Study", on_delete=models.CASCADE, related_name="deid_exports")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    pseudonym = models.CharField(_("pseudonym"), max_length=64,
                                 help_text="replaces Patient's Name and Patient ID in every file")
    uid_key = models.BinaryField(default=_new_key, editable=False,
                                 help_text="HMAC key mapping UIDs within this export (never shown)")
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    files_exported = models.PositiveIntegerField(default=0)
    files_excluded = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0, help_text="bytes of the exported files")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = DeidExportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"DeidExport {self.public_id}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("deid:export_detail", kwargs={"deidexport_id": self.public_id})

    @property
    def is_finished(self) -> bool:
        return self.state in (State.READY, State.FAILED)

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        return int(100 * self.files_done / self.files_total) if self.files_total else 0

    @property
    def downloadable(self) -> bool:
        return self.state == State.READY and self.files_exported > 0


class DeidExportFileQuerySet(OrgScopedQuerySet):
    visible_action = "view_org_data"


class DeidExportFile(PublicIdModel):
    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="+")
    export = models.ForeignKey(DeidExport, on_delete=models.CASCADE, related_name="files")
    instance = models.ForeignKey("imaging.Instance", on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True)
    path = models.CharField(max_length=200, blank=True, help_text="inside the package: S001_CT/IM00001.dcm")
    blob = models.ForeignKey("imaging.Blob", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sha256 = models.CharField(max_length=64, blank=True)
    crc32 = models.BigIntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(default=0)
    original_bytes = models.BigIntegerField(default=0)

    objects = DeidExportFileQuerySet.as_manager()

    class Meta:
        ordering = ["export", "id"]
        constraints = [models.UniqueConstraint(fields=["export", "instance"], name="one_deid_file_per_instance")]

    def __str__(self) -> str:
        return f"DeidExportFile {self.public_id}"
