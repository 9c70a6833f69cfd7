"""Operators (``is_staff`` / ``is_superuser``): the Django admin lists every organization's people
and rows, so an operator uses a second factor like an org admin (the access gate asks for it on
every page, /admin/ included, and sends one with none to enrol); the admin shows nothing that may
name a patient; and an operator's idle sign-out is LIGHTBOX_OPERATOR_IDLE_MINUTES, not the
no-membership default by accident."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts import mfa
from apps.organizations.models import Role
from apps.sharing.usecases import UseCase
from tests.accounts.conftest import enrol, idle_for, totp_code
from tests.factories import (
    TEST_PASSWORD,
    CaseFactory,
    GrantFactory,
    OriginalRequestFactory,
    StudyFactory,
    UserFactory,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return UserFactory(email="op@lightbox.example", is_staff=True, is_superuser=True)


def _admin_sign_in(user) -> Client:
    client = Client()
    response = client.post("/admin/login/", {"username": user.email, "password": TEST_PASSWORD, "next": "/admin/"})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    return client


@pytest.mark.parametrize("flags", [{"is_staff": True}, {"is_superuser": True}, {"is_staff": True,
                                                                                "is_superuser": True}])
def test_an_operator_must_use_a_second_factor(flags):
    assert mfa.mfa_required(UserFactory(**flags))
    assert not mfa.mfa_required(UserFactory())


def test_an_operator_without_a_second_factor_is_sent_to_enrol_before_the_admin(operator, org_a, admin_a):
    client = _admin_sign_in(operator)
    for path in ("/admin/", "/admin/accounts/user/", "/admin/organizations/organization/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/mfa/setup/"), path
    assert client.get("/accounts/mfa/setup/?next=/admin/").status_code == 200


def test_an_enrolled_operator_enters_a_code_before_the_admin(operator, org_a, admin_a):
    device = enrol(operator)
    client = _admin_sign_in(operator)
    response = client.get("/admin/accounts/user/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/mfa/verify/")
    assert admin_a.email.encode() not in response.content
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/admin/accounts/user/"}
                       ).status_code == 302
    page = client.get("/admin/accounts/user/")
    assert page.status_code == 200 and admin_a.email.encode() in page.content


def test_the_admin_names_no_patient(operator, verified_client, org_a):
    case = CaseFactory(organization=org_a, title="Jane Roe - left breast mass")
    education = GrantFactory(case=case, organization=org_a, grantee=None, grantee_email="jane.roe@mail.example",
                             use_case=UseCase.PATIENT_EDUCATION)
    patient = member(org_a, Role.PATIENT, email="pat.roe@mail.example")
    accepted = GrantFactory(case=case, organization=org_a, grantee=patient, use_case=UseCase.PATIENT_EDUCATION,
                            case_title_at_end="Jane Roe - earlier title")
    consultant = GrantFactory(case=case, organization=org_a, grantee=None, grantee_email="consult@ext.example",
                              use_case=UseCase.SECOND_OPINION)
    request = OriginalRequestFactory(organization=org_a, grant=consultant, requested_by=UserFactory(),
                                     reason="Jane Roe's nodule", decision_note="Roe family asked")
    study = StudyFactory(organization=org_a, case=case, patient_name="Roe^Jane", patient_id="MRN-778899",
                         accession_number="ACC-55", study_description="Jane Roe follow-up")
    client = verified_client(operator)
    pages = {
        "education": client.get(f"/admin/sharing/grant/{education.pk}/change/"),
        "accepted": client.get(f"/admin/sharing/grant/{accepted.pk}/change/"),
        "consultant": client.get(f"/admin/sharing/grant/{consultant.pk}/change/"),
        "request": client.get(f"/admin/sharing/originalrequest/{request.pk}/change/"),
        "study": client.get(f"/admin/imaging/study/{study.pk}/change/"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        body = response.content.decode()
        for needle in ("Jane Roe", "jane.roe@", "pat.roe@", "Roe^Jane", "MRN-778899", "ACC-55", "Roe family"):
            assert needle not in body, (name, needle)
        assert str(case.public_id) in body, name  # the case is named by its id
    assert "A patient (address not shown)" in pages["education"].content.decode()
    assert "consult@ext.example" in pages["consultant"].content.decode()  # a consultant is no patient


def test_an_operator_is_signed_out_after_the_operator_idle_limit(settings, operator, verified_client):
    settings.LIGHTBOX_IDLE_MINUTES_DEFAULT = 60
    settings.LIGHTBOX_OPERATOR_IDLE_MINUTES = 5
    client = verified_client(operator)
    assert idle_for(client, 4, path="/admin/").status_code == 200
    response = idle_for(client, 6, path="/admin/")
    assert "_auth_user_id" not in client.session and response["Location"].startswith("/accounts/login/")


def test_an_operator_member_of_a_stricter_organization_gets_its_limit(settings, org_a, verified_client):
    settings.LIGHTBOX_OPERATOR_IDLE_MINUTES = 30
    org_a.staff_idle_minutes = 3
    org_a.save()
    operator = member(org_a, Role.ORG_ADMIN, email="op.admin@alpha.example")
    operator.is_staff = True
    operator.save()
    client = verified_client(operator)
    response = idle_for(client, 4, path="/admin/")
    assert "_auth_user_id" not in client.session and response["Location"].startswith("/accounts/login/")
