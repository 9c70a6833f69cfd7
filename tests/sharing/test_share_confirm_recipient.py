"""The share review names a person as Share created names them, apart from the kind of recipient,
and its button says what confirming does. QA found "Recipient: A named person
clinician@northwind.example" (the kind run into the address, no name) and "Confirm and create
the link" on a share to a person, which is not a link for anyone to open."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing.models import Grant
from tests.factories import member

pytestmark = pytest.mark.django_db


def _review(owner, case, form: dict) -> str:
    client = Client()
    client.force_login(owner)
    response = client.post(reverse("sharing:case_share", kwargs={"case_id": case.public_id}), form)
    assert response.status_code == 200 and 'name="confirm"' in response.content.decode()
    return response.content.decode()


def _button(page: str) -> str:
    return re.search(r'<button [^>]*data-testid="confirm-share">([^<]*)</button>', page).group(1)


def test_a_share_to_a_named_person_names_them_apart_from_the_kind(owner, case, org_a):
    casey = member(org_a, Role.EXTERNAL_CONSULTANT, email="clinician@northwind.example",
                   full_name="Casey Clinician")
    page = _review(owner, case, {"use_case": "second_opinion", "recipient_kind": "user",
                                 "recipient_email": casey.email})
    assert ('<dd data-testid="confirm-recipient"><span data-testid="confirm-recipient-kind">A named person</span>: '
            '<span data-testid="confirm-recipient-person">Casey Clinician '
            '<small class="help">clinician@northwind.example</small></span></dd>') in page
    assert _button(page) == "Confirm and share"
    assert "Confirm and create the link" not in page
    assert not Grant.objects.exists()


def test_an_anonymous_link_is_still_created_as_a_link(owner, case):
    case.organization.anonymous_links_enabled = True
    case.organization.save(update_fields=["anonymous_links_enabled"])
    page = _review(owner, case, {"use_case": "custom", "recipient_kind": "anonymous", "hours": "12"})
    assert '<span data-testid="confirm-recipient-kind">Anonymous link</span></dd>' in page
    assert _button(page) == "Confirm and create the link"
