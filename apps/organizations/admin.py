from __future__ import annotations

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin, ReadOnlyTabularInline
from apps.organizations.models import Membership, Organization


class MembershipInline(ReadOnlyTabularInline):
    """Roles change through organizations.services.membership_update/_add (policy, audit)."""

    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(ReadOnlyAdmin):
    """Policy fields change through organizations.services.organization_update_policy (audited)."""

    list_display = ["name", "slug", "anonymous_links_enabled", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]
