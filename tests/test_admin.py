"""The Django admin writes nothing that the portal changes through a service: those services check
the policy and record the change in the audit trail, and the admin would do neither. Every
ModelAdmin of our apps is read-only, even for a superuser: a membership's role, a sharing policy,
a study (whose deletion must also remove its blobs) are changed through the portal."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.forms.models import model_to_dict
from django.test import RequestFactory

from apps.audit.models import AuditEvent
from apps.imaging.models import Study
from apps.organizations.models import Membership, Role
from apps.sharing.models import SharingPolicy
from tests.factories import SharingPolicyFactory, StudyFactory, UserFactory, member

pytestmark = pytest.mark.django_db

OUR_ADMINS = [(model, model_admin) for model, model_admin in admin.site._registry.items()
              if type(model_admin).__module__.startswith("apps.")]


@pytest.fixture
def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def test_our_admins_are_listed():
    labels = {model._meta.label for model, _ in OUR_ADMINS}
    assert {"organizations.Organization", "sharing.SharingPolicy", "imaging.Study", "accounts.User"} <= labels


@pytest.mark.parametrize(("model", "model_admin"), OUR_ADMINS, ids=[m._meta.label for m, _ in OUR_ADMINS])
def test_every_model_admin_is_read_only(model, model_admin, superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert "delete_selected" not in model_admin.get_actions(request)
    for inline in model_admin.get_inline_instances(request):
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
