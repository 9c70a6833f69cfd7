"""A page of another of the person's organizations asks to switch before it asks for a second
factor: the switch page acts on nothing (apps.organizations.switching.switch_first), so nobody is
sent to enter an authenticator code only to be told "Switch to Alpha Hospital" after (found by a
reviewer on deleting and attaching a study, inviting a case's patient, a membership page, and
extending, renewing a share and resetting a member's second factor, all of whose step-up came
first). Once the organization is the active one, these pages still ask for a recent second factor
before they act; and a role that may not is refused before it, as on the members page (89150e8)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts import mfa
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from tests.factories import CaseFactory, GrantFactory, MembershipFactory, StudyFactory, member

pytestmark = pytest.mark.django_db

SWITCH_NEEDED = 'data-testid="switch-needed"'


@pytest.fixture
def setting(settings, org_a, org_b):
    settings.LIGHTBOX_MFA_ENFORCED = True
    for org in (org_a, org_b):  # no enrolment asked at sign-in: the page's own step-up is what is tested
        org.mfa_required_roles = []
        org.save()
    return settings


def _page(name, org_a, org_b, clinician_a):
    """(the person, the url, whether the page takes only a POST) for each page whose step-up came first."""
    radiologist = member(org_b, Role.RADIOLOGIST, email="dr.both@beta.example")
    MembershipFactory(user=radiologist, organization=org_a, role=Role.RADIOLOGIST)
    admin = member(org_b, Role.ORG_ADMIN, email="admin.both@beta.example")
    MembershipFactory(user=admin, organization=org_a, role=Role.ORG_ADMIN)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    membership = Membership.objects.get(user=clinician_a, organization=org_a)
    if name == "study_delete":
        study = StudyFactory(organization=org_a, case=case)
        return radiologist, reverse("imaging:study_delete", kwargs={"study_id": study.public_id}), False
    if name == "study_attach":
        study = StudyFactory(organization=org_a, case=None)
        url = reverse("imaging:study_attach", kwargs={"study_id": study.public_id})
        return radiologist, f"{url}?case={case.public_id}", False
    if name == "patient_invite":
        return radiologist, reverse("accounts:patient_invite", kwargs={"case_id": case.public_id}), False
    if name in ("grant_extend", "grant_renew"):
        grant = GrantFactory(organization=org_a, case=case, created_by=radiologist)
        return radiologist, reverse(f"sharing:{name}", kwargs={"grant_id": grant.public_id}), name == "grant_renew"
    if name == "membership_edit":
        return admin, reverse("organizations:membership_edit", kwargs={"membership_id": membership.public_id}), False
    if name == "invitation_resend":
        from tests.factories import InvitationFactory

        invitation = InvitationFactory(organization=org_a, created_by=admin)
        return admin, reverse("accounts:invitation_resend", kwargs={"invitation_id": invitation.public_id}), True
    assert name == "member_mfa_reset"
    return admin, reverse("accounts:member_mfa_reset", kwargs={"membership_id": membership.public_id}), True


@pytest.mark.parametrize("name", ["study_delete", "study_attach", "patient_invite", "grant_extend", "grant_renew",
                                  "membership_edit", "member_mfa_reset", "invitation_resend"])
def test_another_organizations_page_asks_to_switch_before_a_second_factor(setting, org_a, org_b, clinician_a, name):
    person, url, post_only = _page(name, org_a, org_b, clinician_a)
    client = Client()
    client.force_login(person)
    assert client.post(reverse("organizations:switch", kwargs={"organization_id": org_b.public_id})).status_code == 302
    page = client.post(url) if post_only else client.get(url)
    assert page.status_code == (403 if post_only else 200), page.get("Location")
    assert SWITCH_NEEDED in page.content.decode() and "Switch to Alpha Hospital" in page.content.decode()
    assert not AuditEvent.objects.filter(actor=person, action="auth.step_up_required").exists()
    # in Alpha, the page asks for a recent second factor before it acts, as before
    assert client.post(reverse("organizations:switch", kwargs={"organization_id": org_a.public_id})).status_code == 302
    asked = client.post(url) if post_only else client.get(url)
    assert asked.status_code == 302 and asked["Location"].startswith(reverse("accounts:step_up")), asked.get("Location")
    assert AuditEvent.objects.filter(actor=person, action="auth.step_up_required").exists()
    assert mfa.step_up_reason(url)[0]  # the step-up page still says that this page asked for it


def test_a_role_that_may_not_is_refused_a_membership_page_before_the_step_up(setting, org_a, clinician_a):
    """The membership page: the switch page first (ffaa433), then a role that may not manage the
    members refused at once (403, recorded), not after a second factor (89150e8's rule)."""
    radiologist = member(org_a, Role.RADIOLOGIST, email="radiologist@alpha.example")
    url = reverse("organizations:membership_edit",
                  kwargs={"membership_id": Membership.objects.get(user=clinician_a).public_id})
    client = Client()
    client.force_login(radiologist)
    assert client.get(url).status_code == 403
    assert not AuditEvent.objects.filter(actor=radiologist, action="auth.step_up_required").exists()
    assert AuditEvent.objects.filter(actor=radiologist, action="access.denied",
                                     details__wanted="manage_members").exists()


def test_a_second_factor_reset_asked_for_a_code_returns_to_its_membership_page(setting, org_a, admin_a, clinician_a):
    """A reviewer: the reset is a button (a POST); the step-up returned to the reset's own address
    with a GET, a 405. It returns to the membership page the button is on, to press it again."""
    from urllib.parse import parse_qs, urlsplit

    membership = Membership.objects.get(user=clinician_a, organization=org_a)
    client = Client()
    client.force_login(admin_a)
    asked = client.post(reverse("accounts:member_mfa_reset", kwargs={"membership_id": membership.public_id}))
    assert asked.status_code == 302 and urlsplit(asked["Location"]).path == reverse("accounts:step_up")
    back = parse_qs(urlsplit(asked["Location"]).query)["next"]
    assert back == [reverse("organizations:membership_edit", kwargs={"membership_id": membership.public_id})]
