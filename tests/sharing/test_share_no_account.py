"""A share to an e-mail address that no account has. Its link opens only for the account with
that address, signed in, and nobody can sign up (external consultants and patients arrive by
invitation): such a share led nowhere, and the sharer was never told. The share form and the API
refuse it before anything is made, and the form links to the invitation (the one way to an
account), with the address and the case filled in. A signed-out visitor of a named share's link
is told what to do, not sent to a bare sign-in page."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import Grant
from apps.sharing.usecases import RecipientKind, UseCase
from tests.conftest import mail_patient_leaks
from tests.factories import UserFactory, member
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db

ADDRESS = "ext.one@stmarys.example"


def _share(client: Client, case, **fields):
    return client.post(reverse("sharing:case_share", kwargs={"case_id": case.public_id}), fields)


def test_the_form_refuses_an_address_without_an_account_and_links_to_the_invitation(owner, case):
    client = Client()
    client.force_login(owner)
    fields = {"use_case": "consultant", "recipient_kind": "email", "recipient_email": ADDRESS}
    for sent in (fields, {**fields, **confirmation(client)}):  # the review, and a confirmation as well
        response = _share(client, case, **sent)
        assert response.status_code == 400
        assert response.context["form"].has_error("recipient_email", "no_account")
        page = response.content.decode()
        assert "No account has this address: invite them first." in page
        invite = re.search(r'data-testid="invite-first">.*?<a href="([^"]+)"', page, re.S).group(1)
        assert invite == (f"{reverse('accounts:invitation_send')}?email=ext.one%40stmarys.example"
                          f"&amp;case={case.public_id}")
    assert not Grant.objects.exists() and mail.outbox == []

    # the invitation page comes filled in: the address, and the case ticked (its acceptance
    # shares the case, after the consultant made an account and enrolled a second factor)
    form = client.get(invite.replace("&amp;", "&")).context["form"]
    assert form["email"].value() == ADDRESS
    assert list(form["cases"].value()) == [case.pk]
    response = client.post(reverse("accounts:invitation_send"),
                           {"email": ADDRESS, "role": Role.EXTERNAL_CONSULTANT, "cases": [case.pk], "language": "en"})
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [[ADDRESS]]
    assert mail_patient_leaks(mail.outbox) == []


def test_a_patient_education_share_to_an_address_without_an_account_links_to_the_patient_invitation(owner, case):
    client = Client()
    client.force_login(owner)
    response = _share(client, case, use_case="patient_education", recipient_kind="email",
                      recipient_email="someone@home.example")
    assert response.status_code == 400
    assert (f'href="{reverse("accounts:patient_invite", kwargs={"case_id": case.public_id})}"'
            in response.content.decode())


def test_an_address_with_an_account_is_shared_with_as_before(owner, case):
    recipient = UserFactory(email="ext.two@stmarys.example")
    client = Client()
    client.force_login(owner)
    fields = {"use_case": "consultant", "recipient_kind": "email", "recipient_email": "Ext.Two@stmarys.example"}
    assert _share(client, case, **fields).status_code == 200
    assert _share(client, case, **fields, **confirmation(client)).status_code == 200
    grant = Grant.objects.get()
    assert grant.grantee_email == recipient.email and grant.grantee is None  # bound when its link is opened


def test_the_api_refuses_an_address_without_an_account(owner, case, client_as):
    response = client_as(owner).post("/api/v1/grants/", {
        "case": str(case.public_id), "use_case": "consultant", "recipient_kind": "email",
        "recipient_email": ADDRESS}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["recipient_email"] == [
        "No account has this address: invite them first. Once they have accepted the invitation and signed in, "
        "share with them."]
    assert not Grant.objects.exists()


def test_a_signed_out_visitor_of_a_named_link_is_told_what_to_do(owner, case, org_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="ext.three@stmarys.example")
    _grant, link, raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                              recipient_kind=RecipientKind.EMAIL, grantee_email=consultant.email)
    response = Client().get(reverse("sharing:link_open", kwargs={"token": raw}))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Sign in to open this share" in page
    assert f'href="/accounts/login/?next=%2Fs%2F{raw}%2F"' in page
    assert "ask the person who sent you this link to invite you" in page.replace("Ask", "ask")
    assert case.title not in page and case.patient.name not in page
    link.refresh_from_db()
    assert link.use_count == 0  # nothing used
