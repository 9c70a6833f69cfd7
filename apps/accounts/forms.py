from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Invitation
from apps.accounts.services import language_of
from apps.cases.selectors import case_search_match
from apps.core.forms import SearchedChoicesForm, SearchedModelMultipleChoiceField
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.policy import Action

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

    from apps.accounts.models import User
    from apps.organizations.models import Organization

#: an invited address longer than its column cannot be stored (nor can such an address exist)
_INVITED_EMAIL_MAX = Invitation._meta.get_field("email").max_length


def language_choices() -> list[tuple[str, str]]:
    """The portal's languages, each by its own name ("English", "Español"), as the header's
    switcher names them (base.html: ``name_local|capfirst``); the form offered "Spanish" beside the
    header's "Español" (found by QA)."""
    return [(code, capfirst(get_language_info(code)["name_local"])) for code, _name in settings.LANGUAGES]


class LanguageSelect(forms.Select):
    """A select whose options say which language their text is in (``lang``), as the switcher's."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        option["attrs"]["lang"] = value
        return option


def _language_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label=_("Language of the invitation"), choices=language_choices, required=False, widget=LanguageSelect,
        initial=lambda: language_of(None),  # the inviter's, when the page is drawn
        help_text=_("The e-mail is written in it, and the new account's pages are shown in it."))


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from your authenticator app (or a recovery code)"), max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}))


class EnrolForm(forms.Form):
    code = forms.CharField(
        label=_("6-digit code shown by your authenticator app"), max_length=6, min_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "pattern": "[0-9]{6}"}))


class InvitationForm(SearchedChoicesForm, forms.Form):
    """Invite someone by e-mail, optionally to cases. Its cases (the open cases the inviter may
    share: thousands in a hospital) are a searched list, as a tumor board's: the page draws those
    ticked and a bounded number of matches of the case list's search; any case of ``cases_qs`` is
    accepted, drawn or not, and no other."""

    email = forms.EmailField(label=_("E-mail address"), max_length=_INVITED_EMAIL_MAX)
    role = forms.ChoiceField(label=_("Role"), choices=[c for c in Role.choices if c[0] != Role.PATIENT],
                             initial=Role.EXTERNAL_CONSULTANT)
    cases = SearchedModelMultipleChoiceField(
        label=_("Cases the invitation opens"), required=False, queryset=None, match=None,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("An external consultant sees only these cases, and nothing else."))
    language = _language_field()

    def __init__(self, *args, organization: Organization, user: User, cases_qs: QuerySet,
                 request: HttpRequest | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["cases"]
        field.queryset = cases_qs
        # ``request``: one that only reads (the choices endpoint), whose memberships the search decides on
        field.match = lambda q: case_search_match(user=user, organization=organization, q=q, request=request)
        field.search_url = f"{reverse('accounts:invitation_choices')}?list=cases"
        field.label_from_instance = lambda c: c.title
        # the roles this user may give here, as the policy says for each (the service checks the
        # invitation itself): a clinician was offered the staff roles, each then refused. Asked
        # once, here: a callable's choices were asked again each time they were read (checking the
        # choice, drawing the list)
        facts = policy.request_facts(request, user)
        allowed = policy.invitable_roles(user, organization, facts=facts)
        self.fields["role"].choices = [(value, label) for value, label in Role.choices if value in allowed]
        # who does not manage members invites a consultant to cases they share, never to none
        self.cases_required = not policy.can(user, Action.MANAGE_MEMBERS, organization, facts=facts)
        if not cases_qs.exists():
            # an org admin (who shares no case) saw "None to choose from." and nothing more
            self.fields["cases"].help_text = _(
                "You may share no open case: a consultant invited now sees nothing until someone who "
                "may share a case (a clinician or a radiologist) shares it with them.")

    def clean(self):
        data = super().clean()
        if self.cases_required and "cases" in data and not data["cases"]:
            # the service refused it as a right (400 "You may not give this access"): it is a
            # choice left out
            self.add_error("cases", _("Choose the cases the consultant is invited to: you may invite a "
                                      "consultant only to cases you share with them."))
        return data


class PatientInvitationForm(forms.Form):
    email = forms.EmailField(label=_("Patient's e-mail address"), max_length=_INVITED_EMAIL_MAX)
    language = _language_field()


class AcceptForm(forms.Form):
    """Creating the account an invitation was sent for: the e-mail is the invited one."""

    full_name = forms.CharField(label=_("Full name"), max_length=200,
                                widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password1 = forms.CharField(label=_("Choose a password"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                help_text=_("At least 12 characters."))
    password2 = forms.CharField(label=_("Repeat the password"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, email: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        if p1:
            from apps.accounts.models import User

            try:
                password_validation.validate_password(p1, User(email=self.email, full_name=data.get("full_name", "")))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class BirthDateForm(forms.Form):
    birth_date = forms.DateField(label=_("Your date of birth"),
                                 widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}),
                                 help_text=_("To check that this invitation reached the right person."))


class SSOConfigForm(forms.Form):
    enabled = forms.BooleanField(label=_("Single sign-on enabled"), required=False, initial=True)
    issuer = forms.URLField(
        label=_("Issuer URL"), max_length=300, assume_scheme="https",
        help_text=_("The OpenID Connect issuer; /.well-known/openid-configuration is read from it."))
    client_id = forms.CharField(label=_("Client id"), max_length=200)
    client_secret = forms.CharField(
        label=_("Client secret"), required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the stored one."))
    allowed_domains = forms.CharField(label=_("Allowed e-mail domains"), max_length=500,
                                      help_text=_("Comma-separated, e.g. hospital.example"))


class SSOStartForm(forms.Form):
    email = forms.EmailField(label=_("Work e-mail address"), widget=forms.EmailInput(attrs={"autocomplete": "email"}))
