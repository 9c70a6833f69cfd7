from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

from apps.audit import actions
from apps.sharing import policy
from apps.sharing.models import Permission
from apps.sharing.usecases import Rendition

register = template.Library()


@register.filter
def permission_labels(permissions: list[str]) -> str:
    """["view", "download_preview"] -> "View, Download preview" (translated); what a grant gives
    (``policy.grant_gives``) names the education copy's download on its own."""
    labels = {**dict(Permission.choices), policy.GIVES_EDUCATION: _("Download the education copy")}
    return ", ".join(str(labels.get(p, p)) for p in permissions or ())


@register.filter
def held_back_reason(reasons: tuple[str, ...]) -> str:
    """Why a patient's share gives its patient none of its studies (``policy.grants_held_back_entirely``:
    the flags of ``policy.held_back_from_patient`` found among them, or ``policy.NOT_THE_PATIENT``),
    for the staff (translated)."""
    from apps.cases.selectors import NO_PATIENT_ID, OTHER_PATIENT

    if policy.NOT_THE_PATIENT in reasons:  # sent to an account that is not the case's patient's
        return _("The recipient's account is not this case's patient's (the account the patient's invitation "
                 "linked to them): this share gives it nothing. Revoke it, and share with the patient's own account.")
    if OTHER_PATIENT in reasons and NO_PATIENT_ID in reasons:
        return _("The patient ID in their images differs from this case's MRN or is missing.")
    if OTHER_PATIENT in reasons:
        return _("The patient ID in their images differs from this case's MRN.")
    return _("Their images carry no patient ID.")


@register.filter
def names_downloads(share) -> bool:
    """Whether a share gives any download (``policy.names_downloads``): a Grant, or the
    ``ShareTerms`` the share review shows. A view-only share's download count and limit count
    nothing and are not shown."""
    if hasattr(share, "template"):  # ShareTerms: what confirming the review would create
        return policy.names_downloads(use_case=share.template.key, permissions=share.permissions,
                                      renditions=share.renditions)
    return policy.grant_names_downloads(share)


@register.filter
def rendition_labels(renditions: list[str]) -> str:
    """["original", "preview"] -> "Original DICOM, Compressed preview" (translated)."""
    labels = dict(Rendition.choices)
    return ", ".join(str(labels.get(r, r)) for r in renditions or ())


@register.filter
def event_label(event) -> str:
    """An audit event's label, as the audit page says it (``actions.event_label``: its action's,
    or how it was made: "Case viewed", "Original DICOM access approved"; translated)."""
    return actions.event_label(event.action, event.details)


@register.filter
def event_actor(event) -> tuple[str, str]:
    """(name, reference) of who an audit event without a person names: "System", "Share link"
    and its id, translated (the stored label is a code such as "system" or "link:<uuid>")."""
    return actions.actor_label(event.actor_type, event.actor_label)
