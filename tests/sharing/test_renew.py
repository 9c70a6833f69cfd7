"""Renewing a share: who may (the policy's RENEW_GRANT: managing the grant and sharing its case),
which grants (never a revoked one, never one renewed already, the organization's rules now in
force), and what the renewal keeps (every restriction of the old share). "My shares" offers Renew
exactly where renewing would succeed."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.models import Grant, SharingPolicy
from apps.sharing.policy import Action
from apps.sharing.usecases import TEMPLATES, RecipientKind, UseCase
from tests.factories import CaseFactory, GrantFactory, member

pytestmark = pytest.mark.django_db


def _anonymous(case, owner, **extra):
    case.organization.anonymous_links_enabled = True
    case.organization.save(update_fields=["anonymous_links_enabled"])
    return services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                 recipient_kind=RecipientKind.ANONYMOUS, **extra)


# --------------------------------------------------------------------------- who

@pytest.mark.parametrize(("role", "creator", "may"), [
    (Role.CLINICIAN, True, True),      # the sharer
    (Role.CLINICIAN, False, True),     # another clinician: manages grants and shares cases
    (Role.RADIOLOGIST, False, True),
    (Role.COORDINATOR, False, False),  # manages grants (revoke, extend), may not share
    (Role.ORG_ADMIN, False, False),
    (Role.EXTERNAL_CONSULTANT, False, False),
])
def test_renewing_needs_what_sharing_needs(org_a, case, owner, consultant, role, creator, may):
    actor = owner if creator else member(org_a, role)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner, use_case="consultant")
    assert policy.can(actor, Action.RENEW_GRANT, grant) is may
    if may:
        new, _link, _raw = services.grant_renew(grant=grant, by=actor)
        assert new.renewed_from == grant
    else:
        with pytest.raises(PermissionDenied):
            services.grant_renew(grant=grant, by=actor)
        denial = AuditEvent.objects.get(action="access.denied")
        assert denial.details == {"wanted": "renew_grant"} and denial.actor == actor
        assert Grant.objects.count() == 1 and Grant.objects.get().revoked_at is None


def test_a_role_that_lost_sharing_renews_nothing_it_created(org_a, case, consultant):
    """The creator's own right to manage the grant stands on their sharing right: a clinician
    made coordinator keeps revoke and extend, not renew."""
    creator = member(org_a, Role.CLINICIAN)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=creator, use_case="consultant")
    creator.memberships.update(role=Role.COORDINATOR)
    assert policy.can(creator, Action.MANAGE_GRANT, grant)
    assert not policy.can(creator, Action.RENEW_GRANT, grant)


def test_renew_is_no_role_action():
    assert policy.roles_with(Action.RENEW_GRANT) == []


# --------------------------------------------------------------------------- which

def test_a_revoked_grant_stays_revoked(org_a, case, owner, consultant):
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner, use_case="consultant")
    services.grants_revoke(grants=[grant], by=owner, reason="revoked by sharer")
    with pytest.raises(ValidationError, match="revoked share cannot be renewed"):
        services.grant_renew(grant=grant, by=owner)
    assert not Grant.objects.live().exists()


def test_a_grant_renewed_once_is_not_renewed_again(org_a, case, owner, consultant):
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner, use_case="consultant")
    services.grant_renew(grant=grant, by=owner)
    grant.refresh_from_db()
    with pytest.raises(ValidationError, match="renewed already"):
        services.grant_renew(grant=grant, by=owner)
    assert Grant.objects.live().count() == 1
    # a renewal left unrevoked (an earlier bug, a shell) still counts as renewed
    Grant.objects.filter(pk=grant.pk).update(revoked_at=None, revoke_reason="")
    grant.refresh_from_db()
    assert services.grant_renew_refusal(grant=grant) == services.RenewRefusal.RENEWED


def test_anonymous_links_switched_off_since_are_not_renewed(case, owner):
    grant, _link, _raw = _anonymous(case, owner)
    case.organization.anonymous_links_enabled = False
    case.organization.save(update_fields=["anonymous_links_enabled"])
    grant.refresh_from_db()
    with pytest.raises(PermissionDenied, match="switched off"):
        services.grant_renew(grant=grant, by=owner)
    assert AuditEvent.objects.filter(action="share.refused", details__reason="anonymous_links_off").exists()
    assert Grant.objects.get().revoked_at is None


def test_my_shares_offers_renew_exactly_where_renewing_succeeds(org_a, case, owner, consultant, client_as):
    def grant(**kw):
        return GrantFactory(organization=org_a, case=kw.pop("case", case), grantee=consultant, created_by=owner,
                            **{"use_case": "consultant", **kw})

    renewable = grant()
    revoked = grant()
    services.grants_revoke(grants=[revoked], by=owner, reason="revoked by sharer")
    renewed = grant()
    services.grant_renew(grant=renewed, by=owner)
    not_renewable = grant(use_case="second_opinion")
    on_closed = grant(case=CaseFactory(organization=org_a, status="closed"))
    expired = grant(expires_at=timezone.now() - timedelta(hours=1))  # a new cycle after the end: yes
    page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    offered = {g: reverse("sharing:grant_renew", kwargs={"grant_id": g.public_id}) in page
               for g in (renewable, revoked, renewed, not_renewable, on_closed, expired)}
    assert offered == {renewable: True, revoked: False, renewed: False, not_renewable: False, on_closed: False,
                       expired: True}
    for g, shown in offered.items():
        g.refresh_from_db()
        if shown:
            services.grant_renew(grant=g, by=owner)
        else:
            with pytest.raises(ValidationError):
                services.grant_renew(grant=g, by=owner)


def _invitation_kind_dropped(case, owner, monkeypatch):
    """The template no longer takes e-mail invitations (the code's table changed since)."""
    grant = GrantFactory(organization=case.organization, case=case, grantee=None, grantee_email="x@example.org",
                         created_by=owner, use_case="consultant", permissions=["view"], renditions=["preview"])
    template = TEMPLATES[UseCase.CONSULTANT]
    monkeypatch.setitem(TEMPLATES, UseCase.CONSULTANT, replace(template, recipients=(RecipientKind.USER,)))
    return grant


def _group_kind_not_taken(case, owner, monkeypatch):
    """A group share under a template that takes named people and e-mail invitations only."""
    grant = GrantFactory(organization=case.organization, case=case, grantee=None, group_name="Team",
                         created_by=owner, use_case="consultant", permissions=["view"], renditions=["preview"])
    grant.group_members.set([member(case.organization, Role.EXTERNAL_CONSULTANT)])
    return grant


def _renditions_not_given(case, owner, monkeypatch):
    """It names only a rendition the template does not give (any longer)."""
    return GrantFactory(organization=case.organization, case=case, grantee=member(case.organization, Role.PATIENT),
                        created_by=owner, use_case="tumor_board", permissions=["view"], renditions=["education"])


def _permissions_not_given(case, owner, monkeypatch):
    """Nothing it gives is in what the template gives now."""
    return GrantFactory(organization=case.organization, case=case, grantee=member(case.organization, Role.RADIOLOGIST),
                        created_by=owner, use_case="tumor_board", permissions=["download_original"])


def _anonymous_switched_off(case, owner, monkeypatch):
    grant, _link, _raw = _anonymous(case, owner)
    case.organization.anonymous_links_enabled = False
    case.organization.save(update_fields=["anonymous_links_enabled"])
    return grant


@pytest.mark.parametrize("build", [_invitation_kind_dropped, _group_kind_not_taken, _renditions_not_given,
                                   _permissions_not_given, _anonymous_switched_off])
def test_my_shares_offers_no_renew_that_the_rules_in_force_refuse(case, owner, client_as, monkeypatch, build):
    """The renewal is held to the organization's rules now in force (``share_terms``): where they
    refuse it, "My shares" does not offer it, and rendering the page records and creates nothing."""
    grant = build(case, owner, monkeypatch)
    grant.refresh_from_db()
    SharingPolicy.objects.filter(organization=case.organization).delete()
    client = client_as(owner)  # signing in is recorded: before counting
    events = AuditEvent.objects.count()
    page = client.get(reverse("sharing:my_shares")).content.decode()
    assert reverse("sharing:grant_revoke", kwargs={"grant_id": grant.public_id}) in page  # it is listed
    assert reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}) not in page
    assert services.grant_renew_refusal(grant=grant) is not None
    assert services.grants_renewable(grants=[grant], by=owner) == [False]
    assert AuditEvent.objects.count() == events and not SharingPolicy.objects.exists()  # no side effects
    with pytest.raises((ValidationError, PermissionDenied)):
        services.grant_renew(grant=grant, by=owner)
    assert Grant.objects.filter(renewed_from=grant).count() == 0
    grant.refresh_from_db()
    assert grant.revoked_at is None


def test_my_shares_offers_no_renew_to_a_creator_who_may_no_longer_share(org_a, case, consultant, client_as):
    creator = member(org_a, Role.CLINICIAN)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=creator, use_case="consultant")
    creator.memberships.update(role=Role.COORDINATOR)
    page = client_as(creator).get(reverse("sharing:my_shares")).content.decode()
    assert reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}) not in page
    assert reverse("sharing:grant_revoke", kwargs={"grant_id": grant.public_id}) in page
    assert client_as(creator).post(reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id})
                                   ).status_code == 403


# --------------------------------------------------------------------------- what it keeps

def test_an_anonymous_renewal_keeps_its_passcode_uses_limit_and_cap(case, owner):
    SharingPolicy.objects.update_or_create(organization=case.organization,
                                           defaults={"anonymous_max_hours": 6, "anonymous_download_limit": 2})
    grant, link, _raw = _anonymous(case, owner, hours=4, second_factor="passcode", passcode="synthetic-pass",
                                   max_uses=3, download_limit=1)
    new, new_link, _new_raw = services.grant_renew(grant=grant, by=owner, hours=72)
    assert new.is_anonymous and new_link.anonymous and new_link.token_hash != link.token_hash
    assert new_link.second_factor == "passcode"
    assert check_password("synthetic-pass", new_link.passcode_hash)  # the passcode the recipient knows
    assert new_link.max_uses == 3 and new_link.use_count == 0
    assert new.download_limit == 1
    assert (new.expires_at - new.starts_at) <= timedelta(hours=6)  # the organization's anonymous cap
    assert new.permissions == grant.permissions and new.renditions == grant.renditions


def test_a_renewal_is_held_to_the_organizations_maximum_now(case, owner, consultant):
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="consultant", permissions=["view", "download_preview"], renditions=["preview"],
                         mfa_required=True, download_limit=4)
    SharingPolicy.objects.update_or_create(organization=case.organization,
                                           defaults={"template_settings": {"consultant": {"max_hours": 12}}})
    with pytest.raises(ValidationError) as refused:
        services.grant_renew(grant=grant, by=owner, hours=24)
    assert refused.value.code == "hours"
    new, _link, _raw = services.grant_renew(grant=grant, by=owner)
    assert (new.expires_at - new.starts_at) <= timedelta(hours=12)
    assert new.mfa_required and new.download_limit == 4 and new.grantee == consultant
    assert new.permissions == ["download_preview", "view"] and new.renditions == ["preview"]


def test_a_renewal_never_widens_a_share(case, owner, consultant):
    """A preview-only consultant share stays preview-only (the template could give originals)."""
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="consultant", permissions=["view"], renditions=["preview"])
    new, _link, _raw = services.grant_renew(grant=grant, by=owner)
    assert new.permissions == ["view"] and new.renditions == ["preview"]


def test_extending_an_anonymous_link_stops_at_the_organizations_anonymous_cap(case, owner):
    SharingPolicy.objects.update_or_create(organization=case.organization, defaults={"anonymous_max_hours": 6})
    grant, _link, _raw = _anonymous(case, owner, hours=4)
    with pytest.raises(ValidationError) as refused:
        services.grant_extend(grant=grant, by=owner, expires_at=grant.starts_at + timedelta(hours=10),
                              reason="The family needs the evening.")
    assert refused.value.code == "expires_at"
    services.grant_extend(grant=grant, by=owner, expires_at=grant.starts_at + timedelta(hours=6),
                          reason="The family needs the evening.")


# --------------------------------------------------------------------------- two at once

@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_two_renewals_at_once_make_one(org_a, owner, monkeypatch):
    """The second renewal waits for the first one's row lock, then finds the grant renewed."""
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner, use_case="consultant")
    real_create = services.grant_create
    second: list[threading.Thread] = []
    failures: list[BaseException] = []

    def in_thread():
        try:
            services.grant_renew(grant=grant, by=owner)
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    def create(**kwargs):  # the first renewal holds the lock: start the second, let it wait
        if not second:
            second.append(threading.Thread(target=in_thread))
            second[0].start()
            time.sleep(0.5)
        return real_create(**kwargs)

    monkeypatch.setattr(services, "grant_create", create)
    services.grant_renew(grant=grant, by=owner)
    second[0].join(timeout=30)
    assert len(failures) == 1 and isinstance(failures[0], ValidationError), failures
    assert Grant.objects.filter(renewed_from=grant).count() == 1
    assert Grant.objects.live().count() == 1
