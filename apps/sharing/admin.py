"""Read-only admin for support staff: grants, links and sharing policies are changed through the
services (which check the policy and audit), never edited here."""

from __future__ import annotations

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.sharing.models import Grant, OriginalRequest, ShareLink, SharingPolicy


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "organization", "use_case", "source", "expires_at", "revoked_at", "open_count",
                    "download_count"]
    list_filter = ["use_case", "source"]


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "organization", "anonymous", "second_factor", "use_count", "max_uses", "locked_at",
                    "revoked_at"]
    exclude = ["token_hash", "passcode_hash"]


@admin.register(OriginalRequest)
class OriginalRequestAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "organization", "status", "created_at", "decided_at"]


@admin.register(SharingPolicy)
class SharingPolicyAdmin(ReadOnlyAdmin):
    list_display = ["organization", "anonymous_max_hours", "anonymous_download_limit"]
