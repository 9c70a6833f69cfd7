"""Forms of the imaging pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.imaging.models import Study
from apps.imaging.services import attach_patient_ids_differ


def attach_patient_differs(*, study: Study, case: Any) -> bool:
    """Whether a patient ID in the images that attaching ``study`` to ``case`` moves (the study
    and its other versions in no case, as ``services.study_attach`` takes them) is not the case
    patient's MRN, by ``services.attach_patient_ids_differ`` (the rule the service applies again
    under its locks). The confirmation then warns, and the attach is refused unless the user ticks
    that they checked the images are that patient's: another patient's images in the case would
    reach the case's shares and that patient's portal. Decided afresh for the page and the POST."""
    return attach_patient_ids_differ(patient_ids=_attached_patient_ids(study), mrn=case.patient.mrn)


def _attached_patient_ids(study: Study) -> list[str | None]:
    """The patient IDs in the images attaching ``study`` moves (its versions in no case too)."""
    return [study.patient_id, *Study.objects.versions_of(study).filter(case__isnull=True)
            .values_list("patient_id", flat=True)]


def attach_patient_id_missing(*, study: Study, case: Any) -> bool:
    """Whether what makes ``attach_patient_differs`` warn is only images that carry no patient ID
    (none, or blanks), no ID of another patient: the confirmation then says that the images carry
    no patient ID rather than that it is not the case's MRN, as the case page tells a missing ID
    apart (found by QA). The decision (the box to tick) is the same."""
    from apps.cases.selectors import patient_id_missing

    mrn = case.patient.mrn
    differing = [p for p in _attached_patient_ids(study) if attach_patient_ids_differ(patient_ids=[p], mrn=mrn)]
    return bool(differing) and all(patient_id_missing(p) for p in differing)


class StudyAttachForm(forms.Form):
    """The attach confirmation's POST. When the patient ID in the images is not the case's MRN
    (``attach_patient_differs``, decided by the view for each request, never taken from the form),
    the user must tick that they checked the images are the case patient's: without the box the
    attach is refused and nothing is attached. When they match, there is no box. The view passes
    the answer to ``services.study_attach`` (``patient_confirmed``), which decides again under its
    locks: a version of another patient made since this form was checked is refused there."""

    patient_checked = forms.BooleanField(
        label=_("I have checked that these images belong to this case's patient."),
        error_messages={"required": _("The patient ID in the images is not the case's MRN. Tick the box to confirm "
                                      "that these images belong to this case's patient, or choose another case. "
                                      "Nothing was attached.")})

    def __init__(self, *args: Any, study: Study, case: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.patient_id_missing = False
        if not attach_patient_differs(study=study, case=case):
            del self.fields["patient_checked"]
        elif attach_patient_id_missing(study=study, case=case):
            self.patient_id_missing = True
            self.fields["patient_checked"].error_messages["required"] = _(
                "The images carry no patient ID. Tick the box to confirm that these images belong to this "
                "case's patient, or choose another case. Nothing was attached.")

    @property
    def patient_differs(self) -> bool:
        return "patient_checked" in self.fields
