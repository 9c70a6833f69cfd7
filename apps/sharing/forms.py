from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext

from apps.core.forms import BoundedDateTimeField, BoundedModelMultipleChoiceField
from apps.sharing.models import COUNT_MAX, Grant, SecondFactor
from apps.sharing.usecases import (
    ANONYMOUS_LINK_FIELDS,
    ANONYMOUS_MAX_HOURS,
    TEMPLATES,
    RecipientKind,
    Rendition,
    UseCase,
    templates_taking,
)

#: the share form's fields that belong to some kinds of recipient only (the others take every
#: kind): the form marks them with those kinds (``data-recipient-kinds``, for js/share_form.js,
#: which shows only the chosen kind's), and ``ShareForm.clean`` refuses the link's terms given for
#: another kind (``services.share_link_terms_check``, the API's rule too), and drops another
#: kind's recipients
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "recipient_email": (RecipientKind.USER, RecipientKind.EMAIL),
    "group_emails": (RecipientKind.GROUP,), "group_name": (RecipientKind.GROUP,),
    "max_uses": (RecipientKind.ANONYMOUS,), "second_factor": (RecipientKind.ANONYMOUS,),
    "passcode": (RecipientKind.ANONYMOUS,),
}
#: a share to an e-mail address that no account has (the form and the API refuse it)
NO_ACCOUNT = gettext_noop("No account has this address: invite them first. Once they have accepted the "
                          "invitation and signed in, share with them.")


class ShareForm(forms.Form):
    """The share steps: template, recipients, scope, expiry (then a confirmation page)."""

    use_case = forms.ChoiceField(label=_("1. What is this share for?"), choices=UseCase.choices,
                                 initial=UseCase.SECOND_OPINION)
    recipient_kind = forms.ChoiceField(label=_("2. Who receives it?"), choices=RecipientKind.choices,
                                       initial=RecipientKind.USER)
    recipient_email = forms.EmailField(label=_("Recipient's e-mail address"), required=False,
                                       max_length=Grant._meta.get_field("grantee_email").max_length,
                                       help_text=_("The address of a person with a Lightbox account. Someone "
                                                   "without one is invited first: sign-up is by invitation only."))
    group_emails = forms.CharField(label=_("Group members' e-mail addresses"), required=False,
                                   widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text=_("One per line; each needs a Lightbox account."))
    group_name = forms.CharField(label=_("Group name"), max_length=120, required=False)
    rendition = forms.ChoiceField(
        label=_("3. Which images?"), required=False,
        choices=[("", _("As the template says")), (Rendition.PREVIEW, _("Compressed preview only")),
                 (Rendition.ORIGINAL, _("Original DICOM and preview"))],
        help_text=_("Only templates marked “as chosen” let you pick; others use the template's images."))
    studies = BoundedModelMultipleChoiceField(
        label=_("Studies"), required=False, queryset=None, widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick none to share the whole case; tick some to share only those studies."))
    hours = forms.IntegerField(label=_("4. Expires after (hours)"), required=False, min_value=1,
                               help_text=_("Leave empty for the template's default, the shortest practical."))
    download_limit = forms.IntegerField(label=_("Download limit"), required=False, min_value=1,
                                        max_value=COUNT_MAX)
    not_before = BoundedDateTimeField(label=_("Not before"), required=False,
                                      widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                      help_text=_("The link does not open before this time (a tumor board's day)."))
    max_uses = forms.IntegerField(label=_("Use limit (number of openings)"), required=False, min_value=1,
                                  max_value=COUNT_MAX)
    second_factor = forms.ChoiceField(label=_("Second factor for the link"), choices=SecondFactor.choices,
                                      required=False)
    passcode = forms.CharField(label=_("Passcode"), required=False, min_length=6, max_length=64,
                               widget=forms.PasswordInput(render_value=True),
                               help_text=_("Tell the recipient by another channel (phone), not in the same e-mail."))

    def __init__(self, *args: Any, case: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from apps.imaging.models import Study

        studies = Study.objects.filter(case=case) if case is not None else Study.objects.none()
        self.fields["studies"].queryset = studies
        self.fields["studies"].label_from_instance = lambda s: (
            f"{s.study_description or _('Untitled study')} ({s.modalities or '—'}, {s.study_date or '—'})")
        if not studies.exists():
            del self.fields["studies"]
        # an organization that switched anonymous links off is not offered them; one asked for
        # anyway (an old page) is refused in ``clean`` with that reason, beside the field
        from apps.sharing import policy

        self.anonymous_off = case is not None and not policy.anonymous_links_allowed(case.organization)
        asked = self.data.get("recipient_kind") if self.is_bound else None
        if self.anonymous_off and asked != RecipientKind.ANONYMOUS:
            self.fields["recipient_kind"].choices = [
                (value, label) for value, label in self.fields["recipient_kind"].choices
                if value != RecipientKind.ANONYMOUS]
        if self.anonymous_off:
            # nor an anonymous link's terms: nothing here takes them
            for name in ANONYMOUS_LINK_FIELDS:
                del self.fields[name]
        for name, kinds in KIND_FIELDS.items():
            if name in self.fields:
                self.fields[name].widget.attrs["data-recipient-kinds"] = " ".join(kinds)
        # the template is chosen on the same page: which templates take the kinds that not every
        # one takes is said beside the choice, from the templates' table (the check in ``clean``),
        # so that "Anonymous link" is not found to be Custom's only after submitting (found by QA)
        self.fields["recipient_kind"].help_text = " ".join(
            _("%(kind)s: only with %(templates)s.") % {
                "kind": label, "templates": ", ".join(t.label for t in templates_taking(value))}
            for value, label in self.fields["recipient_kind"].choices
            if len(templates_taking(value)) < len(TEMPLATES))
        # the original on an anonymous link: said beside the images' choice, by the organization's
        # sharing policy (``policy.anonymous_original_refusal``), and refused in ``clean``
        self.org_policy = None
        if case is not None and not self.anonymous_off:
            from apps.sharing.services import sharing_policy_read

            self.org_policy = sharing_policy_read(case.organization_id)
            self.fields["rendition"].help_text = " ".join((str(self.fields["rendition"].help_text), str(
                _("Anonymous links: the original DICOM only with a passcode or the patient's birth-date check.")
                if self.org_policy.anonymous_allow_original else
                _("Not offered for anonymous links: the original DICOM (this organization's sharing policy does "
                  "not allow it)."))))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        from apps.accounts.models import User

        kind = data.get("recipient_kind")
        template = TEMPLATES.get(data.get("use_case") or "")
        if kind == RecipientKind.ANONYMOUS and self.anonymous_off:
            self.add_error("recipient_kind", _("Anonymous links are switched off for this organization."))
        elif template and kind and kind not in template.recipients:
            self.add_error("recipient_kind", _("This template shares with: %(kinds)s.") % {
                "kinds": ", ".join(label for _kind, label in template.recipient_choices)})
        data["grantee"] = None
        data["group_members"] = []
        if kind == RecipientKind.USER:
            email = (data.get("recipient_email") or "").lower()
            user = User.objects.filter(email=email, is_active=True).first() if email else None
            if user is None:
                self.add_error("recipient_email", _("No active account has that address. Invite it instead."))
            data["grantee"] = user
        elif kind == RecipientKind.EMAIL:
            email = (data.get("recipient_email") or "").lower()
            if not email:
                self.add_error("recipient_email", _("Enter the address to invite."))
            elif not User.objects.filter(email=email, is_active=True).exists():
                # the share's link opens only for the account with this address, signed in, and
                # nobody can sign up: the invitation (apps.accounts) is the way to an account
                self.add_error("recipient_email", forms.ValidationError(_(NO_ACCOUNT), code="no_account"))
        elif kind == RecipientKind.GROUP:
            emails = [e.lower() for e in re.split(r"[\s,;]+", data.get("group_emails") or "") if e]
            users = list(User.objects.filter(email__in=emails, is_active=True))
            missing = sorted(set(emails) - {u.email for u in users})
            if missing or not users:
                self.add_error("group_emails", _("No active account for: %(emails)s") % {
                    "emails": ", ".join(missing) or "—"})
            data["group_members"] = users
        elif kind == RecipientKind.ANONYMOUS and data.get("hours") and data["hours"] > ANONYMOUS_MAX_HOURS:
            self.add_error("hours", _("Anonymous links last at most 24 hours."))
        if (kind == RecipientKind.ANONYMOUS and self.org_policy is not None and template is not None
                and template.choose_rendition and data.get("rendition") == Rendition.ORIGINAL):
            from django.core.exceptions import ValidationError

            from apps.sharing.services import anonymous_original_check

            try:  # the service's rule (``share_terms`` asks it again when the share is made)
                anonymous_original_check(org_policy=self.org_policy, second_factor=data.get("second_factor") or "")
            except ValidationError as exc:
                self.add_error("second_factor" if exc.code == "second_factor" else "rendition", exc)
        self._clean_kind_fields(data, kind)
        return data

    def _clean_kind_fields(self, data: dict[str, Any], kind: str | None) -> None:
        """The fields of another kind of recipient than ``kind``: an anonymous link's terms are
        refused beside each (the sharer believed the share protected by them: it is not); another
        kind's recipients are dropped, so that the review shows and the share takes only the
        chosen kind's (without JavaScript the form shows every field, and a browser keeps what was
        typed in a field hidden since)."""
        from apps.sharing.services import share_link_terms_check, share_link_terms_given

        if self.anonymous_off:
            # an old page's, or a hand-made request: the fields are not offered, nothing takes them
            if kind != RecipientKind.ANONYMOUS and share_link_terms_given(self.data):
                self.add_error(None, _("Anonymous links are switched off for this organization: a share takes no "
                                       "use limit, second factor or passcode. Its link opens only for its "
                                       "recipients, signed in."))
        else:
            try:  # the service's rule, which the grants API asks too
                share_link_terms_check(recipient_kind=kind or "", values=data)
            except forms.ValidationError as exc:
                for name, errors in exc.error_dict.items():
                    self.add_error(name, errors)
        for name, kinds in KIND_FIELDS.items():
            if name not in ANONYMOUS_LINK_FIELDS and kind not in kinds and name in data:
                data[name] = ""

    def clean_not_before(self) -> Any:
        """A time in the past is refused beside the field, at the review already (the service's
        rule, ``share_not_before_check``, which creating the share asks again)."""
        from apps.sharing.services import share_not_before_check

        value = self.cleaned_data.get("not_before")
        share_not_before_check(value)
        return value


class ExtendForm(forms.Form):
    expires_at = BoundedDateTimeField(label=_("New expiry"),
                                      widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    reason = forms.CharField(label=_("Reason for the extension"), min_length=10, max_length=1000,
                             widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=_("Required and recorded. No patient names or identifiers."))


class SecondFactorForm(forms.Form):
    """A link's second factor: the passcode (masked), or the patient's birth date as a date field
    (the browser's date picker; typed, only YYYY-MM-DD is taken, so 04/12/1961 is never read as
    the wrong day). An answer that is not a date is an error of the form, not a wrong answer: it
    uses none of the link's tries."""

    value = forms.CharField(label=_("Passcode"), max_length=64,
                            widget=forms.PasswordInput(attrs={"autocomplete": "off"}))

    def __init__(self, *args: Any, birth_date: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if birth_date:
            self.fields["value"] = forms.DateField(
                label=_("Patient's birth date"), input_formats=["%Y-%m-%d"],
                widget=forms.DateInput(attrs={"type": "date", "autocomplete": "off"}, format="%Y-%m-%d"),
                error_messages={"invalid": _("Enter the date as year-month-day, for example 1961-04-12.")})

    def answer(self) -> str:
        """The answer as the link's check takes it (a birth date as YYYY-MM-DD)."""
        value = self.cleaned_data["value"]
        return value.isoformat() if hasattr(value, "isoformat") else value


class OriginalRequestForm(forms.Form):
    reason = forms.CharField(label=_("Why do you need the original DICOM?"), min_length=10, max_length=1000,
                             widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=_("For example: measurements need the full-resolution series."))


class OriginalDecisionForm(forms.Form):
    decision = forms.ChoiceField(label=_("Decision"), choices=[("approve", _("Approve")), ("decline", _("Decline"))],
                                 widget=forms.RadioSelect)
    hours = forms.IntegerField(label=_("Approve for (hours)"), required=False, min_value=1, initial=24,
                               help_text=_("Never past the end of the share it was asked under: the approval "
                                           "ends then if that comes sooner."))
    note = forms.CharField(label=_("Note to the requester"), required=False, max_length=1000,
                           widget=forms.Textarea(attrs={"rows": 2}))


class SharingPolicyForm(forms.Form):
    """An organization's sharing defaults and maxima; they may only narrow the code's table."""

    anonymous_max_hours = forms.IntegerField(label=_("Anonymous links last at most (hours)"), min_value=1,
                                             max_value=ANONYMOUS_MAX_HOURS)
    anonymous_download_limit = forms.IntegerField(label=_("Anonymous links: download limit"), min_value=1,
                                                  max_value=100)
    anonymous_allow_original = forms.BooleanField(
        label=_("Anonymous links may carry the original DICOM"), required=False,
        help_text=_("Off by default: anonymous links give the compressed preview only. On: a sharer may add the "
                    "identified original DICOM to an anonymous link, but only with a passcode or the patient's "
                    "birth-date check. Turning it off stops existing links from giving the original at once."))
    original_approval_max_hours = forms.IntegerField(label=_("Original DICOM approvals last at most (hours)"),
                                                     min_value=1, max_value=24 * 7)

    def __init__(self, *args: Any, template_settings: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        template_settings = template_settings or {}
        # every template, Custom too (its limits were missing here, found by QA): an organization
        # may shorten any of them; Custom's anonymous links stay held to the anonymous limit as well
        for key, template in TEMPLATES.items():
            current = template_settings.get(key, {})
            self.fields[f"{key}__default_hours"] = forms.IntegerField(
                label=_("%(use)s: default expiry (hours)") % {"use": template.label}, min_value=1,
                max_value=template.max_hours, initial=current.get("default_hours", template.default_hours))
            self.fields[f"{key}__max_hours"] = forms.IntegerField(
                label=_("%(use)s: longest expiry (hours)") % {"use": template.label}, min_value=1,
                max_value=template.max_hours, initial=current.get("max_hours", template.max_hours),
                help_text=ngettext("At most %(hours)s hour (the built-in maximum).",
                                   "At most %(hours)s hours (the built-in maximum).",
                                   template.max_hours) % {"hours": template.max_hours})
            if RecipientKind.ANONYMOUS in template.recipients:
                self.fields[f"{key}__max_hours"].help_text = " ".join((
                    str(self.fields[f"{key}__max_hours"].help_text),
                    str(_("Its anonymous links end sooner where the anonymous links' limit above is shorter."))))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for key in TEMPLATES:
            default, maximum = data.get(f"{key}__default_hours"), data.get(f"{key}__max_hours")
            if default and maximum and default > maximum:
                self.add_error(f"{key}__default_hours", _("The default cannot be longer than the maximum."))
        return data

    def template_settings(self) -> dict[str, dict[str, int]]:
        return {key: {"default_hours": self.cleaned_data[f"{key}__default_hours"],
                      "max_hours": self.cleaned_data[f"{key}__max_hours"]}
                for key in TEMPLATES if f"{key}__default_hours" in self.cleaned_data}
