from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django import forms
from django.template.defaultfilters import filesizeformat
from django.utils.formats import number_format
from django.utils.html import format_html
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


# Sizes in the units filesizeformat shows everywhere else in the portal: 1 GB is 1024 MB is 1024**3 bytes
MB = 1024**2
GB = 1024**3
SIZE_UNITS = {"MB": MB, "GB": GB}
BIGINT_MAX = 2**63 - 1  # the column (BigIntegerField) holds no more


def size_in_unit(value: int) -> tuple[str, str]:
    """``value`` bytes as (number, unit) for a person to read and to send back unchanged: in GB when
    that takes at most two decimals (20 GB, 1.5 GB), otherwise in MB, exactly (2000 MB)."""
    gb = Decimal(value) / GB
    if value >= GB and gb == gb.quantize(Decimal("0.01")):
        number, unit = gb, "GB"
    else:
        with localcontext(prec=60):  # a whole number of bytes over 2**20 ends within 20 decimals
            number, unit = Decimal(value) / MB, "MB"
    return format(number.normalize(), "f"), unit


#: a number written with one decimal comma or point ("1,5", "1.5")
_DECIMAL = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
#: "1.500" or "1,500": a thousands separator, or a decimal one? Not guessed
_AMBIGUOUS = re.compile(r"^[+-]?[1-9]\d{0,2}[.,]\d{3}$")


class SizeNumberField(forms.DecimalField):
    """A size's number, with a decimal comma or a decimal point, as people write it in the
    portal's languages (a number box would drop the comma: "1,5" became 15). A separator that may
    be one of thousands ("1.500") is refused with a message rather than read one way or the other."""

    def to_python(self, value: object) -> Decimal | None:
        text = str(value).strip() if value is not None else ""
        if _AMBIGUOUS.match(text):
            raise forms.ValidationError(
                _("“%(value)s” can be read two ways. Write it without a thousands separator (1500), and use a comma "
                  "or a point only before decimals (1,5)."), code="ambiguous", params={"value": text})
        if "," in text and _DECIMAL.match(text):
            text = text.replace(",", ".")
        return super().to_python(text)


class ByteSizeWidget(forms.MultiWidget):
    """A number and a unit (MB, GB) in one row; the field's label names the number box."""

    use_fieldset = False  # one label, as for any text box (includes/field.html)

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__({
            # a text box: a number box drops a decimal comma; the keyboard is still the numeric one
            "number": forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false"}),
            "unit": forms.Select(choices=[("MB", _("MB")), ("GB", _("GB"))], attrs={"aria-label": _("Unit")}),
        }, attrs)

    def decompress(self, value: object) -> list[object]:
        if value in (None, ""):
            return [None, "GB"]
        return list(size_in_unit(int(value)))

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_0" if id_ else ""

    def render(self, name: str, value: object, attrs: dict | None = None, renderer: object = None) -> str:
        return format_html('<span class="size-input">{}</span>', super().render(name, value, attrs, renderer))


class UploadLimitField(forms.MultiValueField):
    """The largest upload, typed as a number and a unit, cleaned to a whole number of bytes from
    1 MiB up to what the column holds. The bounds are checked on the number as typed, before it is
    multiplied out (-1e999999 GB would overflow)."""

    widget = ByteSizeWidget
    min_bytes = MB
    max_bytes = BIGINT_MAX // GB * GB  # a whole number of GB, as the message says it

    def __init__(self, **kwargs) -> None:
        super().__init__((SizeNumberField(), forms.ChoiceField(choices=[(u, u) for u in SIZE_UNITS])), **kwargs)

    def compress(self, data_list: list) -> int | None:
        if not data_list:
            return None
        number, unit = data_list
        factor = SIZE_UNITS[unit]
        with localcontext(prec=60):
            if number < Decimal(self.min_bytes) / factor:
                raise forms.ValidationError(_("The largest upload must be at least 1 MB."), code="min_value")
            if number > Decimal(self.max_bytes) / factor:
                raise forms.ValidationError(
                    gettext("The largest upload must be at most %(max)s GB.")
                    % {"max": number_format(self.max_bytes // GB, force_grouping=True)}, code="max_value")
            return int((number * factor).to_integral_value(rounding=ROUND_HALF_UP))


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

    # typed as a number and a unit (the box shows the limit in force in them); stored, and given by
    # the API, in bytes
    upload_max_bytes = UploadLimitField(label=_("Largest upload"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # the limit in force stays in view when the box holds a refused value; the message (translated
        # already) says which GB the units are
        self.fields["upload_max_bytes"].help_text = gettext(
            "Uploads larger than this are refused before any byte is stored. Now: %(size)s "
            "(1 GB is 1024 MB).") % {"size": filesizeformat(self.instance.upload_max_bytes)}

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

    def clean_invitation_ttl_hours(self) -> int:
        value = self.cleaned_data["invitation_ttl_hours"]
        if not 1 <= value <= 24 * 30:
            raise forms.ValidationError(_("Choose between 1 hour and 30 days (720 hours)."))
        return value
