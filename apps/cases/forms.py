from __future__ import annotations

from uuid import UUID

from django import forms
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User
from apps.cases import selectors, services
from apps.cases.models import (
    BOARD_PARTICIPANT_ROLES,
    REVIEW_DAYS_DEFAULT,
    REVIEW_DAYS_MAX,
    REVIEW_DAYS_MIN,
    AttachmentKind,
    BoardSession,
    Case,
    CaseStatus,
    NoteKind,
    Patient,
    birth_date_bounds,
)
from apps.core.forms import (
    BoundedDateTimeField,
    SearchedChoicesForm,
    SearchedModelChoiceField,
    SearchedModelMultipleChoiceField,
)
from apps.organizations.models import Organization, Role
from apps.sharing import policy
from apps.sharing.policy import Action

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def birth_date_input_bounds(field: forms.Field) -> None:
    """The date input of a patient's birth date offers only the dates accepted
    (``models.birth_date_bounds``: ``min`` and ``max``), so a phone's date picker does not
    offer one that would be refused. Set when the form is made: the bounds move with the days."""
    earliest, latest = birth_date_bounds()
    field.widget.attrs.update(min=earliest.isoformat(), max=latest.isoformat())


class EditVersionMixin:
    """An edit form of a stored row (a ModelForm's ``instance``) that carries, hidden, the
    version of the values of ``version_fields`` it showed (``services.edit_version``): the view
    hands it to the service, which refuses the edit when someone else changed them meanwhile
    (``services.ChangedMeanwhile``) instead of writing the values this form still showed over
    theirs. A form of a new row has none."""

    version_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["version"] = forms.CharField(
                required=False, max_length=64, widget=forms.HiddenInput,
                initial=services.edit_version(self.instance, self.version_fields))


class _SearchedMemberLabel:
    """Members in a searched list: by name and e-mail address, which the search finds them by."""

    def label_from_instance(self, obj: User) -> str:
        return f"{obj.full_name or obj.email} ({obj.email})"


class MembersChoiceField(_SearchedMemberLabel, SearchedModelMultipleChoiceField):
    pass


class SearchedMemberChoiceField(_SearchedMemberLabel, SearchedModelChoiceField):
    pass


class CaseForm(EditVersionMixin, SearchedChoicesForm, forms.ModelForm):
    """A case's own fields. Its responsible clinician (one of the organization's clinicians and
    radiologists: hundreds in a hospital) is a searched list, as a tumor board's host: the one
    named, then a bounded number of matches by name or e-mail; any of them is accepted, drawn or
    not, and the case may name no one. An edit carries the version of what it showed
    (``EditVersionMixin``)."""

    version_fields = services.CASE_EDITABLE

    class Meta:
        model = Case
        fields = ["title", "referring_question", "referred_by", "service_line", "responsible_clinician",
                  "episode_start", "episode_end"]
        widgets = {"referring_question": forms.Textarea(attrs={"rows": 4}), "episode_start": DATE,
                   "episode_end": DATE}

    def __init__(self, *args, organization: Organization, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["responsible_clinician"] = SearchedMemberChoiceField(
            label=_("Responsible clinician"), required=False, blank=True, empty_label=_("No one named yet"),
            queryset=selectors.responsible_clinicians(organization_id=organization.pk),
            match=lambda q: selectors.member_search_match(q=q),
            search_url=f"{reverse('cases:case_choices')}?list=responsible_clinician")
        self.fields["referring_question"].label = _("Clinical question")
        self.fields["referring_question"].help_text = _("Why the images were sent: what should the reader answer?")

    def clean(self):
        data = super().clean()
        start, end = data.get("episode_start"), data.get("episode_end")
        if start and end and end < start:
            self.add_error("episode_end", _("The episode cannot end before it starts."))
        return data


class PatientForm(EditVersionMixin, forms.ModelForm):
    """A patient's recorded details to correct (``services.patient_update``): the name and the
    birth date. A birth date in the future, or more than 130 years ago, is refused (the model
    field's validator, ``birth_date_in_range``), the one recorded included: it is the one to
    correct. Not the MRN (``services.PATIENT_EDITABLE``). It carries the version of the details
    it showed (``EditVersionMixin``): a correction made meanwhile by someone else is not undone."""

    version_fields = services.PATIENT_EDITABLE

    class Meta:
        model = Patient
        fields = ["name", "birth_date"]
        widgets = {"birth_date": DATE}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        birth_date_input_bounds(self.fields["birth_date"])


class CaseCreateForm(CaseForm):
    """A case and its patient: an MRN already known in the organization picks that patient;
    a new MRN creates one (then a name is needed). An MRN known here typed with a name or birth
    date that are not that patient's is asked about (``ask_existing_patient``): the form names the
    patient recorded with it and asks to correct the MRN or to confirm that patient, whose record
    is kept as it is."""

    mrn = forms.CharField(label=_("Patient's medical record number"), max_length=64)
    patient_name = forms.CharField(label=_("Patient's name (new patients only)"), max_length=200, required=False)
    # a date in the future is refused by patient_get_or_create, unless it is the one recorded for
    # the MRN's patient (a record of before such dates were refused): typed as recorded, it is theirs
    birth_date = forms.DateField(label=_("Birth date (new patients only)"), required=False, widget=DATE)

    field_order = ["mrn", "patient_name", "birth_date", "existing_patient", "use_existing_patient", "title",
                   "referring_question", "referred_by", "service_line", "responsible_clinician", "episode_start",
                   "episode_end"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        birth_date_input_bounds(self.fields["birth_date"])
        if self.data.get("existing_patient"):  # the form asked about a patient: the answer is read
            self._add_existing_patient_fields()

    def _add_existing_patient_fields(self) -> None:
        # the patient asked about (its public id, never a name), so that a box ticked for one
        # patient does not confirm another one the MRN was changed to since
        self.fields["existing_patient"] = forms.CharField(required=False, widget=forms.HiddenInput)
        self.fields["use_existing_patient"] = forms.BooleanField(
            label=_("Open the case for the patient already recorded with this number"), required=False)
        self.order_fields(self.field_order)

    def confirmed_patient(self) -> UUID | None:
        """The patient the user confirmed opening the case for (the box ticked), if any."""
        if not self.cleaned_data.get("use_existing_patient"):
            return None
        try:
            return UUID(self.cleaned_data.get("existing_patient") or "")
        except ValueError:
            return None

    def ask_existing_patient(self, patient: Patient, *, show_identity: bool) -> None:
        """The MRN is ``patient``'s and the name or birth date typed are not theirs: say so beside
        the MRN, naming that patient (name and birth date) only to whoever may see who patients are
        (``show_identity``), and offer the box that confirms them (unticked)."""
        self.data = self.data.copy()
        self.data["existing_patient"] = str(patient.public_id)
        self.data.pop("use_existing_patient", None)
        self._add_existing_patient_fields()
        if not show_identity:
            who = _("This medical record number is already that of another patient of this organization.")
        elif patient.birth_date:
            who = _("This medical record number is already that of %(name)s, born %(birth_date)s.") % {
                "name": patient.name, "birth_date": date_format(patient.birth_date, "SHORT_DATE_FORMAT")}
        else:
            who = _("This medical record number is already that of %(name)s, with no birth date recorded.") % {
                "name": patient.name}
        self.add_error("mrn", [who, _(
            "The name or birth date you entered are not theirs: correct the number, or tick the box below to open "
            "the case for the patient already recorded (the name and birth date you entered are not saved).")])


class CaseFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=200,
                        widget=forms.TextInput(attrs={"type": "search"}))
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any status")), *CaseStatus.choices])
    service_line = forms.ChoiceField(label=_("Service line"), required=False)
    modality = forms.CharField(label=_("Modality"), required=False, max_length=16,
                               widget=forms.TextInput(attrs={"placeholder": "CT, MR, ..."}))
    opened_from = forms.DateField(label=_("Opened from"), required=False, widget=DATE)
    opened_to = forms.DateField(label=_("Opened until"), required=False, widget=DATE)

    def __init__(self, *args, service_lines: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service_line"].choices = [("", _("Any service line")), *((s, s) for s in service_lines)]


class NoteForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=NoteKind.choices, initial=NoteKind.NOTE)
    body = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 4}), max_length=20_000)


class BoardForm(SearchedChoicesForm, forms.ModelForm):
    """A tumor board. Its cases (an organization's open cases: thousands in a hospital), its
    participants and its host (hundreds or thousands of members) are searched lists: the page
    draws those ticked (the host chosen) and a bounded number of matches of a search, found by
    the case list's search and by name or e-mail; any open case and any eligible member of the
    organization is accepted, drawn or not. ``request``: a request that only reads (the choices
    endpoint), whose memberships the case search decides on (``case_search_match``)."""

    class Meta:
        model = BoardSession
        fields = ["title", "meeting_at", "review_days", "host", "cases", "participants"]
        widgets = {"meeting_at": DATETIME}
        field_classes = {"meeting_at": BoundedDateTimeField}

    def __init__(self, *args, organization: Organization, user: User, request: HttpRequest | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["meeting_at"].input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        self.fields["review_days"] = forms.TypedChoiceField(
            label=_("Review window"), coerce=int, initial=REVIEW_DAYS_DEFAULT,
            choices=[(d, _("%(days)d days") % {"days": d}) for d in range(REVIEW_DAYS_MIN, REVIEW_DAYS_MAX + 1)],
            help_text=BoardSession._meta.get_field("review_days").help_text)
        url = reverse("cases:board_choices")
        hosts = [r for r in Role.values if Action.MANAGE_CASE in policy.ROLE_ACTIONS[r]]
        self.fields["host"] = SearchedMemberChoiceField(
            label=_("Host"), queryset=selectors.members(organization_id=organization.pk, roles=hosts),
            match=lambda q: selectors.member_search_match(q=q), search_url=f"{url}?list=host")
        self.fields["cases"] = SearchedModelMultipleChoiceField(
            label=_("Cases"), required=False, widget=forms.CheckboxSelectMultiple,
            queryset=Case.objects.for_org(organization.pk).open().order_by("title", "id"),
            match=lambda q: selectors.case_search_match(user=user, organization=organization, q=q, request=request),
            search_url=f"{url}?list=cases")
        self.fields["participants"] = MembersChoiceField(
            label=_("Participants"), required=False, widget=forms.CheckboxSelectMultiple,
            queryset=selectors.members(organization_id=organization.pk, roles=BOARD_PARTICIPANT_ROLES),
            match=lambda q: selectors.member_search_match(q=q), search_url=f"{url}?list=participants",
            help_text=_("Members and invited external consultants. Each gets view access to every case "
                        "when the meeting starts, until it ends."))


class AttachmentForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind of document"), choices=AttachmentKind.choices, initial=AttachmentKind.REPORT)
    file = forms.FileField(label=_("File (PDF, PNG or JPEG, up to 50 MB)"),
                           widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,image/png,image/jpeg"}))
