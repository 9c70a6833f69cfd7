"""The Django admin is for looking, not for writing: the portal changes its rows through services,
which check the policy and record the change in the audit trail; an admin form would do neither
(a membership's role, a sharing policy, a study deleted without its blobs). Every ModelAdmin of
our apps derives from these (tests/test_admin.py)."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ReadOnlyTabularInline(ReadOnlyMixin, admin.TabularInline):
    pass
