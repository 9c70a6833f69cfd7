from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.audit import actions
from apps.audit.models import Outcome
from apps.core.forms import BoundedDateField


class DateInput(forms.DateInput):
    input_type = "date"


class AuditSearchForm(forms.Form):
    user = forms.CharField(label=_("User (e-mail)"), required=False, max_length=200)
    patient = forms.CharField(label=_("Patient (MRN or name)"), required=False, max_length=200)
    case = forms.CharField(label=_("Case (id or title)"), required=False, max_length=200)
    study = forms.CharField(label=_("Study id"), required=False, max_length=64)
    action = forms.ChoiceField(label=_("Action"), required=False)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False,
                                choices=[("", _("Any")), (Outcome.ALLOWED, _("Allowed")),
                                         (Outcome.DENIED, _("Denied")),
                                         (Outcome.FAILED, _("Failed"))])
    date_from = BoundedDateField(label=_("From"), required=False, widget=DateInput)
    date_to = BoundedDateField(label=_("To"), required=False, widget=DateInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = sorted(((name, actions.label(name)) for name in actions.ALL), key=lambda c: str(c[1]))
        self.fields["action"].choices = [("", _("Any")), *choices]

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data
