"""The Django admin writes nothing that the portal changes through a service: those services check
the policy and record the change in the audit trail, and the admin would do neither. Every
registered ModelAdmin is read-only, even for a superuser, ours and the other packages' alike: a
membership's role, a sharing policy, a study (whose deletion must also remove its blobs) are
changed through the portal; so are second factors (an authenticator deleted in the admin was an
MFA reset with no record; `accounts.services.mfa_reset` is the audited one), SSO links and
verified addresses (allauth), lockouts (axes) and groups."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.forms.models import model_to_dict
from django.test import RequestFactory

from apps.audit.models import AuditEvent
from apps.core.admin import WRITABLE_ON_PURPOSE
from apps.imaging.models import Study
from apps.organizations.models import Membership, Role
from apps.sharing.models import SharingPolicy
from tests.factories import SharingPolicyFactory, StudyFactory, UserFactory, member

pytestmark = pytest.mark.django_db

ALL_ADMINS = list(admin.site._registry.items())
OUR_ADMINS = [(model, model_admin) for model, model_admin in ALL_ADMINS
              if type(model_admin).__module__.startswith("apps.")]
#: admins that may stay writable, each with its reason: none. The admin is documented nowhere as
#: the way to change anything (README, docs/): an entry here needs that documentation first.
ALLOWED_WRITABLE: dict[str, str] = {}
CHECKED = [(model, model_admin) for model, model_admin in ALL_ADMINS if model._meta.label not in ALLOWED_WRITABLE]


@pytest.fixture
def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture(autouse=True)
def _mfa_enforced(settings):
    """As in every deployment: an operator passes the second factor before the admin
    (tests/accounts/test_operators.py)."""
    settings.LIGHTBOX_MFA_ENFORCED = True


@pytest.fixture
def admin_client(client, superuser):
    """The operator, signed in with their second factor."""
    from tests.accounts.conftest import enrol, totp_code

    device = enrol(superuser)
    client.force_login(superuser)
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/admin/"}).status_code == 302
    return client


def test_our_admins_are_listed():
    labels = {model._meta.label for model, _ in OUR_ADMINS}
    assert {"organizations.Organization", "sharing.SharingPolicy", "imaging.Study", "accounts.User"} <= labels


def test_other_packages_admins_are_listed():
    """The check below walks every registered admin: the other packages' are among them."""
    labels = {model._meta.label for model, _ in ALL_ADMINS}
    assert {"auth.Group", "account.EmailAddress", "socialaccount.SocialApp", "socialaccount.SocialAccount",
            "socialaccount.SocialToken", "axes.AccessAttempt", "axes.AccessLog", "otp_totp.TOTPDevice",
            "otp_static.StaticDevice"} <= labels


def test_the_allow_list_is_the_documented_one():
    assert WRITABLE_ON_PURPOSE == ALLOWED_WRITABLE


@pytest.mark.parametrize(("model", "model_admin"), CHECKED, ids=[m._meta.label for m, _ in CHECKED])
def test_every_model_admin_is_read_only(model, model_admin, superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.get_actions(request) == {}  # actions write (delete_selected, "mark verified", ...)
    inlines = [inline(model, admin.site) for inline in model_admin.inlines]  # as on a device's own page
    for inline in [*model_admin.get_inline_instances(request), *inlines]:
        assert not inline.has_add_permission(request, None)
        assert not inline.has_change_permission(request)
        assert not inline.has_delete_permission(request)


def _post_data(obj, prefix: str = "") -> dict[str, object]:
    """An admin form's post of ``obj`` as it stands (booleans left out when false, as a browser does)."""
    data: dict[str, object] = {}
    for name, value in model_to_dict(obj).items():
        if value is None or value is False:
            continue
        data[f"{prefix}{name}"] = "on" if value is True else json.dumps(value) if isinstance(value, dict | list) \
            else value
    return data


def test_membership_inline_cannot_change_a_role(admin_client, org_a):
    clinician = member(org_a, Role.CLINICIAN)
    membership = Membership.objects.get(user=clinician)
    data = {**_post_data(org_a), "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
            **_post_data(membership, "memberships-0-"), "memberships-0-role": Role.ORG_ADMIN}
    response = admin_client.post(f"/admin/organizations/organization/{org_a.pk}/change/", data)
    membership.refresh_from_db()
    assert membership.role == Role.CLINICIAN, response.status_code
    assert response.status_code == 403
    assert membership.role == Role.CLINICIAN
    assert not AuditEvent.objects.filter(action="membership.updated").exists()


def test_sharing_policy_cannot_be_edited(admin_client, org_a):
    sharing_policy = SharingPolicyFactory(organization=org_a, anonymous_max_hours=24)
    response = admin_client.post(f"/admin/sharing/sharingpolicy/{sharing_policy.pk}/change/", {
        "organization": org_a.pk, "template_settings": "{}", "anonymous_max_hours": "720",
        "anonymous_download_limit": "99", "original_approval_max_hours": "48",
    })
    assert response.status_code == 403
    assert SharingPolicy.objects.get(pk=sharing_policy.pk).anonymous_max_hours == 24


def test_study_cannot_be_deleted_in_the_admin(admin_client):
    study = StudyFactory()
    assert admin_client.post(f"/admin/imaging/study/{study.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post("/admin/imaging/study/", {"action": "delete_selected", "_selected_action": [study.pk],
                                               "post": "yes"})
    assert Study.objects.filter(pk=study.pk).exists()


def test_an_authenticator_cannot_be_deleted_or_read_in_the_admin(admin_client, org_a):
    """Deleting a device there was a second-factor reset with no audit record; its key (and QR
    code) would let whoever reads it make the person's codes."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = member(org_a, Role.ORG_ADMIN)
    totp = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    static = StaticDevice.objects.create(user=user, name="recovery", confirmed=True)
    static.token_set.create(token="recov3ry")
    base = "/admin/otp_totp/totpdevice"
    assert admin_client.post(f"{base}/{totp.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post(f"{base}/", {"action": "delete_selected", "_selected_action": [totp.pk], "post": "yes"})
    assert admin_client.get(f"{base}/{totp.pk}/config/").status_code == 403
    assert admin_client.get(f"{base}/{totp.pk}/qrcode/").status_code == 403
    page = admin_client.get(f"{base}/{totp.pk}/change/")
    assert page.status_code == 200 and totp.key not in page.content.decode()
    static_page = admin_client.get(f"/admin/otp_static/staticdevice/{static.pk}/change/")
    assert static_page.status_code == 200 and "recov3ry" not in static_page.content.decode()
    assert admin_client.post(f"/admin/otp_static/staticdevice/{static.pk}/delete/", {"post": "yes"}).status_code \
        == 403
    assert TOTPDevice.objects.filter(pk=totp.pk).exists() and StaticDevice.objects.filter(pk=static.pk).exists()


def test_allauth_rows_cannot_be_changed_in_the_admin(admin_client, org_a):
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    user = member(org_a, Role.CLINICIAN)
    address = EmailAddress.objects.create(user=user, email=user.email, verified=False, primary=True)
    link = SocialAccount.objects.create(user=user, provider=f"org-{org_a.slug}", uid="subject-1")
    admin_client.post("/admin/account/emailaddress/", {"action": "make_verified", "_selected_action": [address.pk]})
    assert not EmailAddress.objects.get(pk=address.pk).verified
    assert admin_client.post(f"/admin/socialaccount/socialaccount/{link.pk}/delete/",
                             {"post": "yes"}).status_code == 403
    assert SocialAccount.objects.filter(pk=link.pk).exists()
    assert admin_client.post("/admin/socialaccount/socialapp/add/", {"provider": "openid_connect", "name": "x",
                                                                     "client_id": "x"}).status_code == 403


def test_groups_and_lockouts_cannot_be_changed_in_the_admin(admin_client):
    from axes.models import AccessAttempt
    from django.contrib.auth.models import Group

    assert admin_client.post("/admin/auth/group/add/", {"name": "admins"}).status_code == 403
    assert not Group.objects.exists()
    attempt = AccessAttempt.objects.create(username="someone@alpha.example", ip_address="10.0.0.1",
                                           failures_since_start=5, get_data="", post_data="",
                                           http_accept="", path_info="/accounts/login/", user_agent="x")
    assert admin_client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()


def test_a_package_admin_registered_later_is_made_read_only(superuser):
    """The mechanism, on a site of its own: any writable admin another package registers."""
    from django.contrib.auth.models import Group

    from apps.core.admin import third_party_admins_read_only

    site = admin.AdminSite(name="probe")
    site.register(Group, type("GroupAdmin", (admin.ModelAdmin,), {"__module__": "somepackage.admin"}))
    assert third_party_admins_read_only(site) == ["auth.Group"]
    request = RequestFactory().get("/admin/")
    request.user = superuser
    model_admin = site._registry[Group]
    assert not (model_admin.has_add_permission(request) or model_admin.has_change_permission(request)
                or model_admin.has_delete_permission(request))


def _patients_and_a_clinician(org_a, org_b):
    """Patient accounts of each kind ``policy.patient_accounts`` names (a patient member; an account
    whose patient membership ended, linked to a case's patient by its accepted invitation; an
    account of no organization holding a patient-education share) and a clinician."""
    from apps.sharing.usecases import UseCase
    from tests.factories import CaseFactory, GrantFactory, PatientFactory
    from tests.patient_links import link_patient_account

    member_patient = member(org_a, Role.PATIENT, email="jane.roe@mail.example", full_name="Jane Roe")
    ended = member(org_a, Role.PATIENT, email="john.doe@mail.example", full_name="John Doe")
    Membership.objects.filter(user=ended).update(is_active=False)
    link_patient_account(ended, PatientFactory(organization=org_a))
    educated = UserFactory(email="mary.major@mail.example", full_name="Mary Major")
    GrantFactory(organization=org_b, case=CaseFactory(organization=org_b), grantee=educated,
                 use_case=UseCase.PATIENT_EDUCATION)
    clinician = member(org_a, Role.CLINICIAN, email="carl.clin@alpha.example", full_name="Carl Clinician")
    return [member_patient, ended, educated], clinician


_PATIENT_WORDS = ("Jane Roe", "jane.roe", "John Doe", "john.doe", "Mary Major", "mary.major")


def test_the_user_admin_names_a_patients_account_by_its_id_only(admin_client, org_a, org_b):
    """Found by review: the admin's user list and pages showed patients' names and addresses to
    operators, who care for none of them (56cafb3 hid them on the other admin pages)."""
    patients, clinician = _patients_and_a_clinician(org_a, org_b)
    listing = admin_client.get("/admin/accounts/user/")
    assert listing.status_code == 200
    body = listing.content.decode()
    for word in _PATIENT_WORDS:
        assert word not in body, word
    for patient in patients:
        assert f"Patient account #{patient.pk}" in body
    assert "carl.clin@alpha.example" in body and "Carl Clinician" in body  # staff are shown
    for patient in patients:
        base = f"/admin/accounts/user/{patient.pk}"
        for path in (f"{base}/change/", f"{base}/history/"):
            page = admin_client.get(path)
            assert page.status_code == 200, path
            text = page.content.decode()
            for word in _PATIENT_WORDS:
                assert word not in text, (path, word)
            assert f"Patient account #{patient.pk}" in text, path
    page = admin_client.get(f"/admin/accounts/user/{clinician.pk}/change/").content.decode()
    assert "carl.clin@alpha.example" in page and "Carl Clinician" in page


def test_a_search_by_name_or_address_does_not_find_a_patients_account(admin_client, org_a, org_b):
    patients, clinician = _patients_and_a_clinician(org_a, org_b)
    def found(term: str) -> set[int]:
        response = admin_client.get("/admin/accounts/user/", {"q": term})
        assert response.status_code == 200
        return {user.pk for user in response.context["cl"].result_list}

    ids = {patient.pk for patient in patients}
    assert ids <= found("")  # listed, by their ids
    for term in ("Roe", "jane.roe@mail.example", "John Doe", "Major", "mail.example"):
        assert not found(term) & ids, term
    assert clinician.pk in found("Clinician") and clinician.pk in found("carl.clin@")
