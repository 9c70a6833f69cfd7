"""The de-identification part of the demo (called from apps.core.demo.seed): one finished
de-identified export of the demo CT study, made by the demo radiologist, so the study's export
page shows its report and download. Idempotent: an organization that has an export gets none."""

from __future__ import annotations

from apps.accounts.models import User
from apps.deid.models import DeidExport
from apps.deid.services import deid_export_run, deid_export_start, pseudonym_default
from apps.imaging.models import Study
from apps.organizations.models import Organization, Role


def seed_deid(org: Organization) -> DeidExport | None:
    existing = DeidExport.objects.for_org(org.pk).first()
    if existing is not None:
        return existing
    study = (Study.objects.for_org(org.pk).ready().filter(modalities__contains="CT", case__isnull=False)
             .order_by("pk").first())
    radiologist = User.objects.filter(memberships__organization=org, memberships__role=Role.RADIOLOGIST,
                                      memberships__is_active=True).order_by("pk").first()
    if study is None or radiologist is None:
        return None
    export = deid_export_start(study=study, by=radiologist, pseudonym=pseudonym_default(study=study), enqueue=False)
    return deid_export_run(export_id=export.pk)
