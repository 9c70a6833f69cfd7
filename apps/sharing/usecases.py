"""Share templates: the seed's table of use cases, with the organization's defaults and maxima.

| use case | rendition | access | default expiry |
| radiology second opinion | native DICOM | named user, view and download | 48 h (24-72) |
| telehealth triage | compressed preview | view only, identity-linked | same day |
| tumor board review | annotated PDF and preview (the original DICOM on request) | group | 7 days (5-7) |
| external consultant handoff | DICOM or preview, as chosen | role-based, MFA required | 72 h, renewable |
| patient education | low-resolution export | patient portal | 30 days (policy) |

The code holds the table; an organization may lower (never raise) each default and maximum on
its ``SharingPolicy``. The default is the shortest practical expiry of the use case.

A tumor board review gives the group the case's images to view (previews, as a board's meeting
gives its participants) and the annotated report, not the diagnostic original: a group share lasts
a week, and the original DICOM (its download, and the viewer's diagnostic frames, which need it)
goes to one named person through a request its sharer approves. What a template gives is
``Template.gives_renditions`` (``renditions_given``), which the share page's table lists and a share
of it gives (``services.share_terms``): one source.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db import models
from django.utils.translation import gettext_lazy as _


class UseCase(models.TextChoices):
    SECOND_OPINION = "second_opinion", _("Radiology second opinion")
    TELEHEALTH = "telehealth", _("Telehealth triage")
    TUMOR_BOARD = "tumor_board", _("Tumor board review")
    CONSULTANT = "consultant", _("External consultant handoff")
    PATIENT_EDUCATION = "patient_education", _("Patient education")
    CUSTOM = "custom", _("Custom")


class Rendition(models.TextChoices):
    ORIGINAL = "original", _("Original DICOM")
    PREVIEW = "preview", _("Compressed preview")
    REPORT = "report", _("Annotated report (PDF)")
    EDUCATION = "education", _("Low-resolution education export")


class RecipientKind(models.TextChoices):
    USER = "user", _("A named person")
    GROUP = "group", _("A group of people")
    EMAIL = "email", _("An invited e-mail address")
    ANONYMOUS = "anonymous", _("Anonymous link")


@dataclass(frozen=True)
class Template:
    key: str
    renditions: tuple[str, ...]
    permissions: tuple[str, ...]
    recipients: tuple[str, ...]      # RecipientKind values allowed
    default_hours: int
    min_hours: int
    max_hours: int
    mfa_required: bool = False
    renewable: bool = False
    choose_rendition: bool = False   # the sharer picks original or preview

    @property
    def label(self) -> str:
        return str(UseCase(self.key).label)

    @property
    def gives_renditions(self) -> tuple[str, ...]:
        """The renditions a share of this template gives when none is chosen (``renditions_given``):
        what the share page's templates table lists, and what ``services.share_terms`` gives."""
        return renditions_given(self.renditions, self.permissions)

    @property
    def recipient_choices(self) -> list[tuple[str, str]]:
        """The kinds of recipient it takes, with their labels: what the share form's check (and
        ``services.share_terms``) accepts, and what the share page's templates table lists."""
        return [(kind, str(RecipientKind(kind).label)) for kind in self.recipients]


def renditions_given(renditions: tuple[str, ...] | list[str], permissions: tuple[str, ...] | list[str],
                     ) -> tuple[str, ...]:
    """The renditions of ``renditions`` a share with ``permissions`` gives: the original DICOM only
    with its download (``download_original``: what the viewer's diagnostic frames need too), the
    others as named; the compressed preview when none is left (a grant naming no rendition would
    allow every one)."""
    given = tuple(r for r in renditions if r != Rendition.ORIGINAL or "download_original" in permissions)
    return given or (Rendition.PREVIEW,)


def templates_taking(kind: str) -> list[Template]:
    """The templates that take ``kind`` of recipient (a RecipientKind value)."""
    return [t for t in TEMPLATES.values() if kind in t.recipients]


TEMPLATES: dict[str, Template] = {
    UseCase.SECOND_OPINION: Template(
        UseCase.SECOND_OPINION, (Rendition.ORIGINAL, Rendition.PREVIEW),
        ("view", "download_preview", "download_original"), (RecipientKind.USER, RecipientKind.EMAIL),
        default_hours=48, min_hours=24, max_hours=72),
    UseCase.TELEHEALTH: Template(
        UseCase.TELEHEALTH, (Rendition.PREVIEW,), ("view",), (RecipientKind.USER, RecipientKind.EMAIL),
        default_hours=8, min_hours=1, max_hours=24),
    UseCase.TUMOR_BOARD: Template(
        UseCase.TUMOR_BOARD, (Rendition.REPORT, Rendition.PREVIEW),
        ("view", "download_preview"), (RecipientKind.GROUP, RecipientKind.USER),
        default_hours=7 * 24, min_hours=5 * 24, max_hours=7 * 24, renewable=True),
    UseCase.CONSULTANT: Template(
        UseCase.CONSULTANT, (Rendition.PREVIEW,), ("view", "download_preview"),
        (RecipientKind.USER, RecipientKind.EMAIL),
        default_hours=72, min_hours=1, max_hours=72, mfa_required=True, renewable=True, choose_rendition=True),
    UseCase.PATIENT_EDUCATION: Template(
        UseCase.PATIENT_EDUCATION, (Rendition.EDUCATION,), ("view", "download_preview"),
        (RecipientKind.USER, RecipientKind.EMAIL),
        default_hours=30 * 24, min_hours=24, max_hours=30 * 24),
    UseCase.CUSTOM: Template(
        UseCase.CUSTOM, (Rendition.PREVIEW,), ("view",),
        (RecipientKind.USER, RecipientKind.GROUP, RecipientKind.EMAIL, RecipientKind.ANONYMOUS),
        default_hours=24, min_hours=1, max_hours=72, renewable=True, choose_rendition=True),
}

#: anonymous links never live longer than this, whatever the template says
ANONYMOUS_MAX_HOURS = 24

#: an anonymous link's terms, as the share form and the grants API name them: a share to a person,
#: a group or an invited address opens only for them, signed in, so these would protect nothing
#: there (a sharer who gave one believed they did). ``services.share_link_terms_check`` refuses
#: them on such a share, for the form and the API alike.
ANONYMOUS_LINK_FIELDS = ("max_uses", "second_factor", "passcode")

#: which grant permission a rendition needs to be downloaded
RENDITION_PERMISSION: dict[str, str] = {
    Rendition.ORIGINAL: "download_original",
    Rendition.PREVIEW: "download_preview",
    Rendition.REPORT: "download_preview",
    Rendition.EDUCATION: "download_preview",
}


def template_for(organization_id: int, key: str, *, template_settings: dict | None = None) -> Template:
    """The template as this organization applies it: its own defaults and maxima, which may only
    narrow the code's table (a maximum above the table's is ignored). ``template_settings``: the
    organization's ``SharingPolicy.template_settings``, when read already."""
    from apps.sharing.models import SharingPolicy

    base = TEMPLATES[UseCase(key)]
    if template_settings is None:
        policy = SharingPolicy.objects.filter(organization_id=organization_id).first()
        template_settings = (policy.template_settings or {}) if policy else {}
    override = template_settings.get(base.key, {})
    max_hours = min(int(override.get("max_hours", base.max_hours)), base.max_hours)
    max_hours = max(max_hours, 1)
    default_hours = min(int(override.get("default_hours", base.default_hours)), max_hours)
    min_hours = min(base.min_hours, default_hours)
    return replace(base, default_hours=max(default_hours, 1), max_hours=max_hours, min_hours=min_hours)
