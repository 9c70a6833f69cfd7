from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.organizations.models import Membership, Organization, Role


class MemberAddForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"))
    full_name = forms.CharField(label=_("Full name"), max_length=200, required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role", "is_active"]


class OrganizationPolicyForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["upload_max_bytes", "invitation_ttl_hours", "anonymous_links_enabled"]

    def clean_upload_max_bytes(self) -> int:
        value = self.cleaned_data["upload_max_bytes"]
        if value < 1024 * 1024:
            raise forms.ValidationError(_("The largest upload must be at least 1 MiB."))
        return value

    def clean_invitation_ttl_hours(self) -> int:
        value = self.cleaned_data["invitation_ttl_hours"]
        if not 1 <= value <= 24 * 30:
            raise forms.ValidationError(_("Choose between 1 hour and 30 days (720 hours)."))
        return value
