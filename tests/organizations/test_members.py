"""An org admin manages members and roles; others cannot; a user switches organizations."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from tests.factories import MembershipFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db


def test_admin_adds_a_new_person_who_gets_a_set_password_link(client_as, admin_a, org_a):
    response = client_as(admin_a).post(reverse("organizations:members"), {
        "email": "New.Radiologist@Example.org", "full_name": "New Radiologist", "role": Role.RADIOLOGIST})
    assert response.status_code == 302
    user = User.objects.get(email="new.radiologist@example.org")
    assert not user.has_usable_password()
    assert Membership.objects.get(user=user, organization=org_a).role == Role.RADIOLOGIST
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.radiologist@example.org"]
    assert "/accounts/password/reset/key/" in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="membership.added", organization=org_a, actor=admin_a).exists()


def test_adding_an_existing_member_twice_is_a_clear_error(client_as, admin_a, org_a, clinician_a):
    response = client_as(admin_a).post(reverse("organizations:members"), {
        "email": clinician_a.email, "role": Role.CLINICIAN})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()


def test_admin_changes_a_role_and_it_is_audited(client_as, admin_a, clinician_a, org_a):
    m = Membership.objects.get(user=clinician_a, organization=org_a)
    response = client_as(admin_a).post(reverse("organizations:membership_edit", args=[m.public_id]),
                                       {"role": Role.COORDINATOR, "is_active": "on"})
    assert response.status_code == 302
    m.refresh_from_db()
    assert m.role == Role.COORDINATOR
    event = AuditEvent.objects.get(action="membership.updated")
    assert event.details == {"before": {"role": "clinician", "is_active": True},
                             "after": {"role": "coordinator", "is_active": True}}


def test_the_last_admin_cannot_demote_or_deactivate_themselves(client_as, admin_a, org_a):
    m = Membership.objects.get(user=admin_a, organization=org_a)
    url = reverse("organizations:membership_edit", args=[m.public_id])
    response = client_as(admin_a).post(url, {"role": Role.CLINICIAN, "is_active": "on"})
    assert response.status_code == 400
    assert "at least one active organization admin" in response.content.decode()
    response = client_as(admin_a).post(url, {"role": Role.ORG_ADMIN})  # is_active unchecked
    assert response.status_code == 400
    m.refresh_from_db()
    assert (m.role, m.is_active) == (Role.ORG_ADMIN, True)


@pytest.mark.parametrize("role", [r for r in Role if r != Role.ORG_ADMIN])
def test_non_admins_are_refused_member_management(client_as, org_a, admin_a, role):
    user = member(org_a, role)
    admin_membership = Membership.objects.get(user=admin_a)
    client = client_as(user)
    assert client.get(reverse("organizations:members")).status_code == 403
    assert client.post(reverse("organizations:membership_edit", args=[admin_membership.public_id]),
                       {"role": Role.PATIENT}).status_code in (403, 404)
    assert client.get(reverse("organizations:settings")).status_code == 403
    admin_membership.refresh_from_db()
    assert admin_membership.role == Role.ORG_ADMIN


def test_a_user_in_two_organizations_switches_between_them(client_as):
    north, south = OrganizationFactory(name="North"), OrganizationFactory(name="South")
    user = member(north, Role.RADIOLOGIST)
    MembershipFactory(user=user, organization=south, role=Role.ORG_ADMIN)
    client = client_as(user)
    page = client.get(reverse("dashboard")).content.decode()
    assert "Radiologist" in page and "Members</a>" not in page  # North first, alphabetical
    response = client.post(reverse("organizations:switch", args=[south.public_id]), {"next": "/"})
    assert response.status_code == 302
    page = client.get(reverse("dashboard")).content.decode()
    assert "Organization admin" in page and "Members</a>" in page
    # the members page now lists South's members, not North's
    assert client.get(reverse("organizations:members")).status_code == 200


def test_switch_refuses_an_organization_the_user_left(client_as, org_a, org_b, admin_a):
    m = MembershipFactory(user=admin_a, organization=org_b, role=Role.CLINICIAN)
    m.is_active = False
    m.save()
    assert client_as(admin_a).post(reverse("organizations:switch", args=[org_b.public_id])).status_code == 404


def test_switch_ignores_an_offsite_next(client_as, org_a, admin_a):
    response = client_as(admin_a).post(reverse("organizations:switch", args=[org_a.public_id]),
                                       {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")


def test_admin_edits_policy_settings_with_validation(client_as, admin_a, org_a):
    url = reverse("organizations:settings")
    bad = client_as(admin_a).post(url, {"upload_max_bytes_number": "0.5", "upload_max_bytes_unit": "MB",
                                        "invitation_ttl_hours": 72})
    assert bad.status_code == 400
    ok = client_as(admin_a).post(url, {"upload_max_bytes_number": "5", "upload_max_bytes_unit": "GB",
                                       "invitation_ttl_hours": 48,
                                       "anonymous_links_enabled": "on", "password_login_allowed": "on",
                                       "mfa_required_roles": [Role.ORG_ADMIN], "staff_idle_minutes": 60,
                                       "external_idle_minutes": 15})
    assert ok.status_code == 302
    org_a.refresh_from_db()
    assert (org_a.upload_max_bytes, org_a.invitation_ttl_hours, org_a.anonymous_links_enabled) == (
        5 * 1024**3, 48, True)
    assert AuditEvent.objects.filter(action="organization.policy_changed", organization=org_a).count() == 1


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_open_sign_up_is_closed(client):
    response = client.post(reverse("account_signup"), {"email": "x@example.org", "password1": "a-long-pass-phrase",
                                                        "password2": "a-long-pass-phrase"})
    assert not User.objects.filter(email="x@example.org").exists()
    assert response.status_code == 200


@pytest.mark.parametrize("next_value", ["2026-13-45", "0", "NaN", "//evil.example/"])
def test_switch_with_a_next_that_is_not_a_path_goes_to_the_dashboard(client_as, org_a, admin_a, next_value):
    """A bare word in ``next`` was tried as a view name by ``redirect``: a 500 (found by a form fuzzer)."""
    response = client_as(admin_a).post(reverse("organizations:switch", args=[org_a.public_id]), {"next": next_value})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")


def test_adding_a_member_asks_for_a_role_instead_of_defaulting_to_admin(client_as, admin_a, org_a):
    """The form used to preselect its first role, "Organization admin": a quick "Add member" made
    an admin. Now no role is chosen in advance and one must be chosen."""
    page = client_as(admin_a).get(reverse("organizations:members"))
    import re

    select = re.search(r'<select name="role"[^>]*>(.*?)</select>', page.content.decode(), re.S).group(1)
    first = re.search(r'<option value="([^"]*)"', select).group(1)
    assert first == ""  # what a browser shows chosen when none is marked selected
    assert re.findall(r'<option value="([^"]*)" selected', select) in ([], [""])
    response = client_as(admin_a).post(reverse("organizations:members"), {
        "email": "someone@example.org", "full_name": "Some One", "role": ""})
    assert response.status_code == 400 and "role" in response.context["form"].errors
    assert not User.objects.filter(email="someone@example.org").exists()


class DownMailServer:
    """An e-mail backend whose server cannot be reached."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")


def test_a_member_added_while_mail_is_down_is_kept_and_the_admin_told(client_as, admin_a, org_a, settings):
    """The member is added (nothing lost); the admin learns that the link did not go out and how
    the person can get one later, instead of a server error."""
    settings.EMAIL_BACKEND = f"{__name__}.DownMailServer"
    client = client_as(admin_a)
    client.raise_request_exception = False
    response = client.post(reverse("organizations:members"), {
        "email": "new.radiologist@example.org", "full_name": "New Radiologist", "role": Role.RADIOLOGIST},
        follow=True)
    assert response.status_code == 200
    assert Membership.objects.filter(user__email="new.radiologist@example.org", organization=org_a).exists()
    assert "could not be sent" in response.content.decode()


def test_password_reset_while_mail_is_down_is_not_a_server_error(client, settings, admin_a):
    settings.EMAIL_BACKEND = f"{__name__}.DownMailServer"
    client.raise_request_exception = False
    response = client.post(reverse("account_reset_password"), {"email": admin_a.email})
    assert response.status_code == 302


def test_a_deactivated_member_loses_the_shares_they_hold_there(client_as, admin_a, org_a):
    """An org admin removes a consultant (or a staff member who left): the shares addressed to
    them in this organization end with it; a group share keeps its other members. Recorded."""
    from apps.cases.models import Case
    from apps.sharing import policy
    from apps.sharing.models import Grant
    from apps.sharing.policy import Action
    from tests.factories import CaseFactory, GrantFactory

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    colleague = member(org_a, Role.EXTERNAL_CONSULTANT)
    case, board_case = CaseFactory(organization=org_a), CaseFactory(organization=org_a)
    own = GrantFactory(organization=org_a, case=case, grantee=consultant)
    group = GrantFactory(organization=org_a, case=board_case, grantee=None, group_name="Board")
    group.group_members.set([consultant, colleague])
    elsewhere = GrantFactory(case__organization=OrganizationFactory(), grantee=consultant)
    assert policy.can(consultant, Action.VIEW_CASE, case) and policy.can(consultant, Action.VIEW_CASE, board_case)
    m = Membership.objects.get(user=consultant, organization=org_a)
    response = client_as(admin_a).post(reverse("organizations:membership_edit", args=[m.public_id]),
                                       {"role": Role.EXTERNAL_CONSULTANT})  # is_active unticked
    assert response.status_code == 302
    for c in (case, board_case):
        assert not policy.can(consultant, Action.VIEW_CASE, Case.objects.get(pk=c.pk))
    assert policy.can(colleague, Action.VIEW_CASE, board_case)
    own.refresh_from_db()
    assert own.revoked_at is not None and own.revoke_reason == "membership_ended"
    assert Grant.objects.get(pk=group.pk).revoked_at is None
    assert Grant.objects.get(pk=elsewhere.pk).revoked_at is None  # another organization's share
    assert AuditEvent.objects.filter(action="grant.revoked", details__reason="membership_ended").count() == 1
    removed = AuditEvent.objects.get(action="grant.member_removed")
    assert removed.details["reason"] == "membership_ended" and removed.organization == org_a


@pytest.mark.parametrize("later", ["scheduled", "closed_case"])
def test_a_deactivated_member_loses_shares_that_are_not_live_yet(client_as, admin_a, org_a, later):
    """A share that starts later (a tumor board's day) or whose case is closed for now would give
    access once it starts or the case reopens: deactivating the member ends it too."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.cases.models import Case
    from apps.sharing import policy
    from apps.sharing.models import Grant
    from apps.sharing.policy import Action
    from tests.factories import CaseFactory, GrantFactory

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    colleague = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a)
    now = timezone.now()
    own = GrantFactory(organization=org_a, case=case, grantee=consultant)
    group = GrantFactory(organization=org_a, case=case, grantee=None, group_name="Board")
    group.group_members.set([consultant, colleague])
    if later == "scheduled":
        Grant.objects.filter(pk__in=[own.pk, group.pk]).update(starts_at=now + timedelta(hours=2),
                                                                expires_at=now + timedelta(hours=26))
    else:
        Case.objects.filter(pk=case.pk).update(status="closed")
    m = Membership.objects.get(user=consultant, organization=org_a)
    assert client_as(admin_a).post(reverse("organizations:membership_edit", args=[m.public_id]),
                                   {"role": Role.EXTERNAL_CONSULTANT}).status_code == 302
    # the share starts, the case reopens: nothing of it for the member who left
    Grant.objects.filter(pk__in=[own.pk, group.pk]).update(starts_at=now - timedelta(minutes=1))
    Case.objects.filter(pk=case.pk).update(status="open")
    assert not policy.can(consultant, Action.VIEW_CASE, Case.objects.get(pk=case.pk))
    own.refresh_from_db()
    assert own.revoked_at is not None and own.revoke_reason == "membership_ended"
    assert not Grant.objects.get(pk=group.pk).group_members.filter(pk=consultant.pk).exists()


def test_a_deactivated_member_cannot_accept_a_share_sent_to_their_address(client, client_as, admin_a, org_a):
    """A share sent by e-mail to a member's address is theirs once they open its link: deactivating
    them ends it too, so the link no longer binds it to the person who left."""
    from apps.cases.models import Case
    from apps.sharing import policy
    from apps.sharing import services as sharing
    from apps.sharing.models import Grant
    from apps.sharing.policy import Action
    from tests.factories import CaseFactory, GrantFactory

    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="leaving@consult.example")
    case = CaseFactory(organization=org_a)
    invited = GrantFactory(organization=org_a, case=case, grantee=None, grantee_email="leaving@consult.example")
    _link, raw = sharing.share_link_create(grant=invited, by=admin_a)
    m = Membership.objects.get(user=consultant, organization=org_a)
    assert client_as(admin_a).post(reverse("organizations:membership_edit", args=[m.public_id]),
                                   {"role": Role.EXTERNAL_CONSULTANT}).status_code == 302
    client.force_login(consultant)
    client.get(reverse("sharing:link_open", kwargs={"token": raw}))
    assert not policy.can(consultant, Action.VIEW_CASE, Case.objects.get(pk=case.pk))
    invited.refresh_from_db()
    assert invited.revoked_at is not None and invited.revoke_reason == "membership_ended"
    assert Grant.objects.get(pk=invited.pk).grantee_id is None


@pytest.mark.parametrize("change", ["add_member", "change_role", "settings"])
def test_member_and_settings_changes_need_a_recent_second_factor(settings, org_a, admin_a, clinician_a, change):
    """Making someone an org admin, adding a person or turning the second factor off for a role
    are at least as sensitive as inviting one (which asks for a recent code): a session whose
    last code is older than the step-up window is sent to enter one, and nothing changes."""
    from tests.accounts.conftest import stale_second_factor_client

    settings.LIGHTBOX_MFA_ENFORCED = True
    client, _device = stale_second_factor_client(admin_a)
    clinician = Membership.objects.get(user=clinician_a, organization=org_a)
    url, data = {
        "add_member": (reverse("organizations:members"), {"email": "new@example.org", "role": Role.ORG_ADMIN}),
        "change_role": (reverse("organizations:membership_edit", args=[clinician.public_id]),
                        {"role": Role.ORG_ADMIN, "is_active": "on"}),
        "settings": (reverse("organizations:settings"), {
            "upload_max_bytes_number": "20", "upload_max_bytes_unit": "GB", "invitation_ttl_hours": 72,
            "password_login_allowed": "on",
            "mfa_required_roles": [], "staff_idle_minutes": 60, "external_idle_minutes": 15}),
    }[change]

    response = client.post(url, data)

    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:step_up"))
    assert not User.objects.filter(email="new@example.org").exists()
    clinician.refresh_from_db()
    org_a.refresh_from_db()
    assert clinician.role == Role.CLINICIAN
    assert Role.ORG_ADMIN in org_a.mfa_required_roles
    assert not AuditEvent.objects.filter(action__in=["membership.added", "membership.updated",
                                                     "organization.policy_changed"]).exists()


def test_an_admin_whose_account_is_deactivated_does_not_count_as_the_remaining_admin(client_as, admin_a, org_a):
    """The other admin's account was deactivated (they cannot sign in; the policy gives them
    nothing): the last admin who can act may not demote themselves, leaving no one to manage members."""
    other = member(org_a, Role.ORG_ADMIN)
    User.objects.filter(pk=other.pk).update(is_active=False)
    m = Membership.objects.get(user=admin_a, organization=org_a)
    response = client_as(admin_a).post(reverse("organizations:membership_edit", args=[m.public_id]),
                                       {"role": Role.CLINICIAN, "is_active": "on"})
    assert response.status_code == 400
    assert "at least one active organization admin" in response.content.decode()
    m.refresh_from_db()
    assert m.role == Role.ORG_ADMIN


@pytest.mark.parametrize(("language", "said"), [("en", "Now: 20.0\xa0GB"), ("es", "Ahora: 20,0\xa0GB")])
def test_the_upload_limit_is_said_in_a_size_people_read(client_as, admin_a, org_a, language, said):
    """The limit is typed in bytes (21474836480 by default): the form says what it is."""
    admin_a.language = language
    admin_a.save(update_fields=["language"])
    page = client_as(admin_a).get(reverse("organizations:settings")).content.decode()
    assert said in page


@pytest.mark.parametrize("who", ["other_org_admin", "no_organization"])
def test_an_account_from_elsewhere_is_not_added_without_its_consent(client_as, admin_a, org_a, admin_b, who):
    """Another hospital's staff (or a share's recipient with no organization) joins only through an
    invitation they accept: added directly, they would come under this organization's admin
    (second-factor reset, its SSO signing them in, its password sign-in switch)."""
    from tests.factories import UserFactory

    target = admin_b if who == "other_org_admin" else UserFactory(email="recipient@elsewhere.example")
    response = client_as(admin_a).post(reverse("organizations:members"), {
        "email": target.email.upper(), "role": Role.CLINICIAN})
    assert response.status_code == 400
    assert "Send them an invitation instead" in response.content.decode()
    assert not Membership.objects.filter(user=target, organization=org_a).exists()
    assert not AuditEvent.objects.filter(action="membership.added", organization=org_a).exists()


def test_a_member_deactivated_here_is_taken_back(client_as, admin_a, org_a, clinician_a):
    Membership.objects.filter(user=clinician_a, organization=org_a).update(is_active=False)
    response = client_as(admin_a).post(reverse("organizations:members"), {
        "email": clinician_a.email, "role": Role.RADIOLOGIST})
    assert response.status_code == 302
    m = Membership.objects.get(user=clinician_a, organization=org_a)
    assert m.is_active and m.role == Role.RADIOLOGIST
