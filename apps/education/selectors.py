"""What the patient portal shows: the patient's own live patient-education shares.

Read through the sharing app's querysets (``Grant.objects.live().addressed_to(user)``) and its
policy: a grant expired, revoked or of a closed case is gone on the next request, and whether a
study's education copy may be downloaded, and why not, is ``policy.download_refusal``'s answer (the
rule ``policy.can`` applies), as the download itself asks ``policy.download_decide``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apps.imaging.models import Study
from apps.renditions.models import Kind, Label, Rendition, RenditionFile, Status
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.usecases import Rendition as SharedRendition
from apps.sharing.usecases import UseCase

if TYPE_CHECKING:
    from django.http import HttpRequest

    from apps.accounts.models import User


class CopyState:
    """Where a study's education copy stands, for this patient, now."""

    READY = "ready"                  # download it
    PREPARING = "preparing"          # not made yet (the renditions task runs after ingest)
    UNAVAILABLE = "unavailable"      # could not be made from these images
    LIMIT_REACHED = "limit_reached"  # the share's download limit is used up
    SECOND_FACTOR = "second_factor"  # the share asks for a second factor, not passed in this session
    NOT_INCLUDED = "not_included"    # the share does not give the education copy (its scope)


#: the policy's reason for a refused download, as the portal tells it (anything else: NOT_INCLUDED)
_REFUSAL_STATES = {policy.GrantRefusal.LIMIT_REACHED: CopyState.LIMIT_REACHED,
                   policy.GrantRefusal.SECOND_FACTOR: CopyState.SECOND_FACTOR}


@dataclass
class EducationImage:
    """One image of a study's education copy, shown on the page: ``src`` is filled by
    ``apps.education.services.education_images_fill`` (left empty, the image is not shown)."""

    file: RenditionFile
    src: str = ""


@dataclass(frozen=True)
class EducationStudy:
    study: Study
    state: str
    #: the copy's images, when it is READY (shown on the page)
    images: list[EducationImage] = field(default_factory=list)


@dataclass(frozen=True)
class EducationShare:
    grant: Grant
    studies: list[EducationStudy]
    label: Any = Label.EDUCATION_LOW_RES.label
    #: every study it covers is held back from the patient (``policy.grants_held_back_entirely``):
    #: none is listed, and the page says the care team checks the images, not that a copy is
    #: being prepared (nothing is, until the images' patient details are corrected)
    held_back: bool = False


def _studies_by_grant(grants: list[Grant]) -> dict[int, list[Study]]:
    """The studies each grant covers: those it names, else its case's ready studies (latest
    versions), in two queries whatever the number of grants."""
    from django.db.models import Prefetch, prefetch_related_objects

    prefetch_related_objects(grants, Prefetch("studies", queryset=Study.objects.order_by("study_date", "pk")))
    whole_case = {g.case_id for g in grants if not g.studies.all()}
    by_case: dict[int, list[Study]] = {}
    if whole_case:
        for study in (Study.objects.filter(case_id__in=whole_case).latest_versions().ready()
                      .order_by("study_date", "pk")):
            by_case.setdefault(study.case_id, []).append(study)
    return {g.pk: list(g.studies.all()) or by_case.get(g.case_id, []) for g in grants}


def _state(study: Study, statuses: dict[int, str], refusal: policy.GrantRefusal | None) -> str:
    status = statuses.get(study.pk)
    if status is None or status == Status.PENDING or not study.is_ready:
        return CopyState.PREPARING
    if status == Status.UNAVAILABLE:
        return CopyState.UNAVAILABLE
    if refusal is None:
        return CopyState.READY
    return _REFUSAL_STATES.get(refusal, CopyState.NOT_INCLUDED)


def education_shares_for(*, user: User, request: HttpRequest | None = None) -> list[EducationShare]:
    """The live patient-education grants addressed to ``user``, newest first, each with the
    studies it covers and the state of their education copies: a fixed number of queries
    whatever the number of shares and studies (the policy's ``download_refusals`` decides for
    all the studies at once). With ``request`` (the portal's), the policy decides on what the
    request read (``policy.request_facts``: its memberships)."""
    grants = list(Grant.objects.live().addressed_to(user).filter(use_case=UseCase.PATIENT_EDUCATION)
                  .select_related("case__patient", "created_by", "organization").order_by("-created_at"))
    held_back = policy.grants_held_back_entirely(grants, holder=user)
    # a share of another patient's case (sent to the wrong patient): nothing of it is shown, not even
    # that it exists (the policy gives it nothing: ``policy.is_case_patients_account``)
    kept = [(g, why) for g, why in zip(grants, held_back, strict=True) if policy.NOT_THE_PATIENT not in why]
    grants, held_back = [g for g, _why in kept], [why for _g, why in kept]
    studies_of = _studies_by_grant(grants)
    # a study whose images are not this case's patient's by their patient ID (or carry none) is
    # not theirs: not listed, not counted (the policy's rule; its download is refused as well)
    studies_of = {g.pk: [s for s, why in zip(studies_of[g.pk], policy.held_back_from_patient(
        case=g.case, studies=studies_of[g.pk]), strict=True) if why is None] for g in grants}
    every = list({s.pk: s for studies in studies_of.values() for s in studies}.values())
    statuses = dict(Rendition.objects.filter(study__in=every, kind=Kind.EDUCATION).values_list("study_id", "status"))
    refusals = dict(zip((s.pk for s in every), policy.download_refusals(
        user, every, rendition=SharedRendition.EDUCATION, facts=policy.request_facts(request, user)), strict=True))
    states = {s.pk: _state(s, statuses, refusals[s.pk]) for s in every}
    images: dict[int, list[EducationImage]] = {}
    ready = [pk for pk, state in states.items() if state == CopyState.READY]
    if ready:
        for file in (RenditionFile.objects.filter(study_id__in=ready, kind=Kind.EDUCATION, status=Status.READY)
                     .select_related("instance__series", "image_blob")
                     .order_by("instance__series__series_number", "instance__instance_number", "pk")):
            images.setdefault(file.study_id, []).append(EducationImage(file=file))
    return [EducationShare(grant=grant, studies=[
        EducationStudy(study=s, state=states[s.pk], images=images.get(s.pk, [])) for s in studies_of[grant.pk]],
        held_back=bool(why)) for grant, why in zip(grants, held_back, strict=True)]
