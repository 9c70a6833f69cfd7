from __future__ import annotations

from django import forms
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User
from apps.organizations.models import Membership, Organization, Role


class MemberAddForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=User._meta.get_field("email").max_length)
    full_name = forms.CharField(label=_("Full name"), max_length=200, required=False)
    # no role ticked in advance: the first choice is "Organization admin", and a quick "Add member"
    # must not make someone an admin by default
    role = forms.ChoiceField(label=_("Role"), choices=[("", _("Choose a role")), *Role.choices])


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role", "is_active"]


class OrganizationPolicyForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["upload_max_bytes", "invitation_ttl_hours", "anonymous_links_enabled",
                  "password_login_allowed", "mfa_required_roles", "staff_idle_minutes", "external_idle_minutes"]

    mfa_required_roles = forms.MultipleChoiceField(
        label=_("Roles that must use a second factor"), required=False,
        choices=[c for c in Role.choices if c[0] != Role.PATIENT], widget=forms.CheckboxSelectMultiple,
        help_text=_("Everyone may set up an authenticator app; these roles must. External consultants always must."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # the limit is typed in bytes: say what the one in force is in a size people read
        self.fields["upload_max_bytes"].help_text = gettext(
            "Uploads larger than this are refused before any byte is stored. Now: %(size)s "
            "(1 GB is 1073741824 bytes).") % {"size": filesizeformat(self.instance.upload_max_bytes)}

    def clean_mfa_required_roles(self) -> list[str]:
        roles = set(self.cleaned_data["mfa_required_roles"]) | {Role.EXTERNAL_CONSULTANT.value}
        return sorted(roles)

    def clean_password_login_allowed(self) -> bool:
        value = self.cleaned_data["password_login_allowed"]
        if not value and self.instance.pk:
            from apps.accounts.models import SSOConfig

            if not SSOConfig.objects.filter(organization=self.instance, enabled=True).exists():
                raise forms.ValidationError(_("Set up single sign-on first: staff would have no way to sign in."))
        return value

    def _clean_idle(self, name: str) -> int:
        value = self.cleaned_data[name]
        if not 5 <= value <= 24 * 60:
            raise forms.ValidationError(_("Choose between 5 minutes and 24 hours (1440 minutes)."))
        return value

    def clean_staff_idle_minutes(self) -> int:
        return self._clean_idle("staff_idle_minutes")

    def clean_external_idle_minutes(self) -> int:
        return self._clean_idle("external_idle_minutes")

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
