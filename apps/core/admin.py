"""The Django admin is for looking, not for writing: the portal changes its rows through services,
which check the policy and record the change in the audit trail; an admin form would do neither
(a membership's role, a sharing policy, a study deleted without its blobs). Every ModelAdmin of
our apps derives from these; the other packages' admins are made read-only here
(``third_party_admins_read_only``, at start-up). tests/test_admin.py checks every registered one."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        # an admin action writes (allauth's "mark verified", axes' clean-up), and needs no
        # change permission to be offered
        return {}


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ReadOnlyTabularInline(ReadOnlyMixin, admin.TabularInline):
    pass


#: third-party admins left writable on purpose, with the reason (none: nothing in README or
#: docs/ sends anyone to the admin to change a row; axes' lockouts lapse by themselves after
#: AXES_COOLOFF_TIME, or `manage.py axes_reset`; SSO is configured per organization in the portal,
#: `SSOConfig`, not in allauth's SocialApp; a second factor is reset by
#: `accounts.services.mfa_reset`, audited, never by deleting a device here)
WRITABLE_ON_PURPOSE: dict[str, str] = {}


def _read_only(cls: type) -> type:
    if issubclass(cls, ReadOnlyMixin):
        return cls
    return type(f"ReadOnly{cls.__name__}", (ReadOnlyMixin, cls), {"__module__": cls.__module__})


def third_party_admins_read_only(site: admin.AdminSite = admin.site) -> list[str]:
    """Register again, read-only (and with no actions), every ModelAdmin that another package
    registered: django-otp's devices (deleting one is an unrecorded MFA reset), allauth's accounts
    and e-mail addresses (an e-mail marked verified, an SSO link removed), axes' attempts, auth's
    groups. Their pages still show, as ours do. Called from CoreConfig.ready, after the admin's
    autodiscovery; our own admins must derive from ReadOnlyAdmin themselves. Returns the labels
    re-registered."""
    done = []
    for model, model_admin in list(site._registry.items()):
        cls = type(model_admin)
        if cls.__module__.startswith("apps.") or model._meta.label in WRITABLE_ON_PURPOSE \
                or isinstance(model_admin, ReadOnlyMixin):
            continue
        replacement = _read_only(cls)
        replacement.inlines = [_read_only(inline) for inline in getattr(cls, "inlines", ())]
        site.unregister(model)
        site.register(model, replacement)
        done.append(model._meta.label)
    return done
