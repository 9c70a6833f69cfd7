from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import BooleanField, Case, When
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User
from apps.core.admin import ReadOnlyMixin
from apps.sharing import policy


class _NamedById:
    """``obj`` as the change and history pages name it (their title, breadcrumbs): by
    ``label``, with the account's other attributes (its id, for the history link) as they are."""

    def __init__(self, obj: User, label: str) -> None:
        self._obj = obj
        self._label = label

    def __getattr__(self, name: str) -> object:
        return getattr(self._obj, name)

    def __str__(self) -> str:
        return self._label


@admin.register(User)
class UserAdmin(ReadOnlyMixin, BaseUserAdmin):
    """Accounts change through the portal (invitations, memberships, MFA reset, the password pages),
    which records each change; the admin's password and status forms would record nothing.

    The admin shows every organization's accounts to an operator, who cares for none of their
    patients: a patient's account (``policy.patient_accounts``: a patient membership, active or
    ended, an accepted patient invitation, a patient-education share addressed to it) is named
    by its id, "Patient account #<id>", on the list, its page and its history, and a search by
    name or address does not find it. Staff and consultants are shown by name and address."""

    ordering = ["email"]
    list_display = ["account", "name", "is_active", "is_staff", "last_login"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["account"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    patient_fieldsets = (
        (None, {"fields": ("account",)}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            shown_by_id=Case(When(policy.patient_accounts(), then=True), default=False, output_field=BooleanField()))

    def get_search_results(self, request, queryset, search_term):
        """A patient's account is found by neither its name nor its address."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found = found.exclude(policy.patient_accounts())
        return found, may_have_duplicates

    @staticmethod
    def _shown_by_id(obj: User) -> bool:
        shown = getattr(obj, "shown_by_id", None)
        if shown is None:  # not read through get_queryset
            shown = User.objects.filter(pk=obj.pk).filter(policy.patient_accounts()).exists()
        return bool(shown)

    def label(self, obj: User) -> str:
        """How the admin names ``obj``: a patient's account by its id; anyone else's by address."""
        if self._shown_by_id(obj):
            return gettext("Patient account #%(id)s") % {"id": obj.pk}
        return obj.email

    @admin.display(description=_("account"))
    def account(self, obj: User) -> str:
        return self.label(obj)

    @admin.display(description=_("full name"))
    def name(self, obj: User) -> str:
        return "" if self._shown_by_id(obj) else obj.full_name

    def get_fieldsets(self, request, obj=None):
        if obj is not None and self._shown_by_id(obj):
            return self.patient_fieldsets
        return super().get_fieldsets(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and self._shown_by_id(obj):
            label = self.label(obj)
            extra_context = {**(extra_context or {}), "original": _NamedById(obj, label), "subtitle": label}
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and self._shown_by_id(obj):
            label = self.label(obj)
            extra_context = {**(extra_context or {}), "object": _NamedById(obj, label),
                             "title": gettext("Change history: %s") % label}
        return super().history_view(request, object_id, extra_context)
