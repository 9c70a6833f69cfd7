"""Read-only admin for support staff: grants, links and sharing policies are changed through the
services (which check the policy and audit), never edited here. The admin shows every
organization's rows to an operator, who cares for none of their patients: nothing that may name a
patient is shown (a case's title, the one a share kept when it ended, a request's reason, a
patient's e-mail address); a case is named by its id."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from apps.core.admin import ReadOnlyAdmin
from apps.sharing.models import Grant, OriginalRequest, ShareKind, ShareLink, SharingPolicy


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "organization", "use_case", "source", "expires_at", "revoked_at", "open_count",
                    "download_count"]
    list_filter = ["use_case", "source"]
    # the case's title names the patient more often than not; a patient's address is theirs
    exclude = ["case", "case_title_at_end", "grantee", "grantee_email", "group_members"]
    readonly_fields = ["case_reference", "recipient"]

    @admin.display(description=_("case"))
    def case_reference(self, obj: Grant) -> str:
        return str(obj.case.public_id)

    @admin.display(description=_("recipient"))
    def recipient(self, obj: Grant) -> str:
        """Whom the share reaches: a consultant's or a colleague's address, a group's name; a
        patient's (a patient-education share) is not shown."""
        if obj.kind == ShareKind.PATIENT:
            return str(_("A patient (address not shown)"))
        if obj.grantee_id is not None:
            return obj.grantee.email
        return obj.grantee_email or obj.group_name or str(_("Anyone with the link"))


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "organization", "anonymous", "second_factor", "use_count", "max_uses", "locked_at",
                    "revoked_at"]
    exclude = ["token_hash", "passcode_hash"]


@admin.register(OriginalRequest)
class OriginalRequestAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "organization", "status", "created_at", "decided_at"]
    # the case's title, and the requester's and decider's words, may name the patient
    exclude = ["case", "reason", "decision_note"]
    readonly_fields = ["case_reference"]

    @admin.display(description=_("case"))
    def case_reference(self, obj: OriginalRequest) -> str:
        return str(obj.case.public_id)


@admin.register(SharingPolicy)
class SharingPolicyAdmin(ReadOnlyAdmin):
    list_display = ["organization", "anonymous_max_hours", "anonymous_download_limit"]
