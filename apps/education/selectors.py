"""What the patient portal shows: the patient's own live patient-education shares.

Read through the sharing app's querysets (``Grant.objects.live().addressed_to(user)``) and its
policy: a grant expired, revoked or of a closed case is gone on the next request, and whether a
study's education copy may be downloaded, and why not, is ``policy.download_refusal``'s answer (the
rule ``policy.can`` applies), as the download itself asks ``policy.download_authorize``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.imaging.models import Study
from apps.renditions.models import Kind, Label, Rendition, Status
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.usecases import Rendition as SharedRendition
from apps.sharing.usecases import UseCase

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class EducationStudy:
    study: Study
    state: str


@dataclass(frozen=True)
class EducationShare:
    grant: Grant
    studies: list[EducationStudy]
    label: Any = Label.EDUCATION_LOW_RES.label


def _studies_of(grant: Grant) -> list[Study]:
    named = list(grant.studies.all().order_by("study_date", "pk"))
    if named:
        return named
    return list(Study.objects.filter(case_id=grant.case_id).latest_versions().ready().order_by("study_date", "pk"))


def _state(user: User, study: Study, statuses: dict[int, str]) -> str:
    status = statuses.get(study.pk)
    if status is None or status == Status.PENDING or not study.is_ready:
        return CopyState.PREPARING
    if status == Status.UNAVAILABLE:
        return CopyState.UNAVAILABLE
    refusal = policy.download_refusal(user, study, rendition=SharedRendition.EDUCATION)
    if refusal is None:
        return CopyState.READY
    return _REFUSAL_STATES.get(refusal, CopyState.NOT_INCLUDED)


def education_shares_for(*, user: User) -> list[EducationShare]:
    """The live patient-education grants addressed to ``user``, newest first, each with the
    studies it covers and the state of their education copies."""
    grants = list(Grant.objects.live().addressed_to(user).filter(use_case=UseCase.PATIENT_EDUCATION)
                  .select_related("case", "created_by").order_by("-created_at"))
    shares = []
    for grant in grants:
        studies = _studies_of(grant)
        statuses = dict(Rendition.objects.filter(study__in=studies, kind=Kind.EDUCATION)
                        .values_list("study_id", "status"))
        shares.append(EducationShare(grant=grant, studies=[EducationStudy(study=s, state=_state(user, s, statuses))
                                                           for s in studies]))
    return shares
