"""Rendition badges and download buttons, for every page that shows a study's renditions.

``{% rendition_badge rendition %}``: the label as a badge (a Rendition or a RenditionFile).
``renditions|badge_list``: a study's renditions for a row of badges: only those it has
(``rendition_made``, as its downloads decide), diagnostic ones first, each label once (two
identical badges read as a mistake). Each kind has a label of its own (``models.label_for``): a
lossy source's lossless copy says it is a lossless copy of a lossy original, not what the
original is.
``{% rendition_downloads study %}``: the study's renditions with their badges, and a download
button for each rendition the viewer of the page may take (``policy.allowed_renditions``):
the preview first; the diagnostic ones only with the "original" permission. One not offered
says why, as the policy refuses it (``NOT_OFFERED_BECAUSE``). A diagnostic one
that asks the signed-in person for their second factor first (``mfa.step_up_needed``; the
download's view asks, ``apps.renditions.views._step_up_first``) is a plain link, which the
browser follows to the step-up page and back to the download, not a ``download`` link, which
would save that page as the file; the section says so.
"""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.accounts import mfa
from apps.renditions.models import OFFER_ORDER, SHARING_RENDITION, Kind, Label, Rendition, Status
from apps.sharing import policy

register = template.Library()


#: the order of a row of badges: what may be used for diagnosis first
BADGE_ORDER = (Kind.ORIGINAL, Kind.LOSSLESS, Kind.PREVIEW, Kind.EDUCATION)


def rendition_made(kind: str, rendition) -> bool:
    """Whether a study has the rendition of ``kind`` (``rendition``: its row, or None): the
    original always (its files are the instances received); any other once made for some of its
    images, not while being made or when it could not be (a study with no pixel data has no
    preview). The one rule for what the study page offers and what the case page's badges show."""
    return kind == Kind.ORIGINAL or (rendition is not None
                                     and rendition.status not in (Status.PENDING, Status.UNAVAILABLE))


@register.filter
def badge_list(renditions) -> list:
    """The badges of the renditions the study has (``rendition_made``), diagnostic ones first,
    each label once."""
    rank = {kind: i for i, kind in enumerate(BADGE_ORDER)}
    seen, out = set(), []
    for rendition in sorted(renditions, key=lambda r: rank.get(r.kind, len(rank))):
        if rendition_made(rendition.kind, rendition) and rendition.label not in seen:
            seen.add(rendition.label)
            out.append(rendition)
    return out


@register.inclusion_tag("renditions/_badge.html")
def rendition_badge(rendition) -> dict:
    return {"r": rendition}


#: why a rendition the study has is not offered, as the policy refuses its download
#: (``policy.download_refusals``); any other refusal (no access to downloads at all) says "Not offered".
#: Downloads are named permissions of a share (``usecases.RENDITION_PERMISSION``): a share, or an
#: approved request for the original, that gives the original's download gives no preview's unless
#: it names that too (a telehealth share is for viewing the preview), so its holder reads why.
NOT_OFFERED_BECAUSE = {
    policy.GrantRefusal.NOT_INCLUDED: _("Not offered: what was shared with you does not include downloading it"),
    policy.GrantRefusal.LIMIT_REACHED: _("Not offered: the downloads the share allows are used up"),
    policy.GrantRefusal.SECOND_FACTOR: _("Not offered until you pass two-step verification"),
    policy.GrantRefusal.ANONYMOUS_ORIGINAL: _("Not offered: the organization that shared it does not allow the "
                                              "original DICOM on this anonymous link"),
}

#: why the lossless row of a study whose every original was received lossy offers nothing: no
#: lossless copy is made of such an image (``encoders.lossless_encode``), whoever looks
NO_LOSSLESS_OF_LOSSY = _("Not offered: no lossless copy is made of an original received lossy-compressed")


def lossy_source_only(rendition) -> bool:
    """Whether ``rendition`` is the lossless row of a study none of whose images has a lossless
    copy because each original was received lossy-compressed (the demo's NM "Whole Body Bone"):
    the page says so in one statement, not a "Lossless copy of a lossy original" label of a copy
    that does not exist beside "Not available". A study with some images copied, or some not made
    for another reason, keeps its row as it is."""
    return (rendition is not None and rendition.kind == Kind.LOSSLESS and rendition.status == Status.UNAVAILABLE
            and rendition.label == Label.LOSSLESS_OF_LOSSY and rendition.files_unavailable > 0
            and not rendition.files.filter(source_lossy=False).exists())


@register.inclusion_tag("renditions/_downloads.html", takes_context=True)
def rendition_downloads(context, study) -> dict:
    request = context.get("request")
    actor = policy.actor_for(request) if request is not None else None
    # what the page's own decisions read already (the request's memberships and grants) is not read again
    facts = policy.request_facts(request, actor) if actor is not None else None
    allowed = policy.allowed_renditions(actor, study, facts=facts) if actor is not None else frozenset()
    renditions = {r.kind: r for r in Rendition.objects.filter(study=study)}
    user = getattr(request, "user", None)
    # a diagnostic download asks this person for a recent second factor first (and to set one up
    # first, without one): said beside the buttons, which lead there
    step_up = bool(getattr(user, "is_authenticated", False)) and mfa.step_up_needed(request)
    rows = []
    for kind in OFFER_ORDER:
        rendition = renditions.get(kind)
        offer = rendition_made(kind, rendition) and SHARING_RENDITION[kind] in allowed
        why_not = None
        lossy_source = lossy_source_only(rendition)
        if lossy_source:
            why_not = NO_LOSSLESS_OF_LOSSY
        elif not offer and actor is not None and rendition_made(kind, rendition):
            (refusal,) = policy.download_refusals(actor, [study], rendition=SHARING_RENDITION[kind], facts=facts)
            why_not = NOT_OFFERED_BECAUSE.get(refusal)
        rows.append({"kind": kind, "kind_label": Kind(kind).label, "rendition": rendition, "offer": offer,
                     "why_not": why_not, "lossy_source": lossy_source,
                     "step_up": offer and step_up and SHARING_RENDITION[kind] == "original",
                     "url": reverse("renditions:study_download", kwargs={"study_id": study.public_id})
                     + f"?rendition={kind}"})
    asks = any(r["step_up"] for r in rows)
    return {"rows": rows, "study": study, "any_offer": any(r["offer"] for r in rows), "step_up": asks,
            # the footnote on the lossless copy only where the page offers one to download
            "offers_lossless": any(r["offer"] for r in rows if r["kind"] == Kind.LOSSLESS),
            "enrol_first": asks and not mfa.has_second_factor(user)}
