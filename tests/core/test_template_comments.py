"""Django's ``{# ... #}`` comment is one line only: one spread over two lines is not a comment but
text, printed on the page (found by QA: the note on "My shares"'s Revoke showed on every row). A
comment of more than one line is a ``{% comment %}`` block."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from apps.sharing.services import grant_create
from tests.factories import CaseFactory, member

ROOT = Path(__file__).resolve().parents[2] / "templates"


def test_no_template_opens_a_comment_it_does_not_close_on_the_same_line():
    found = []
    for path in sorted(p for p in ROOT.rglob("*") if p.is_file() and p.suffix in {".html", ".txt", ".xml"}):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.rfind("{#") > line.rfind("#}"):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == [], found


@pytest.mark.django_db
def test_my_shares_shows_no_comment_text(org_a, client_as):
    owner = member(org_a, Role.CLINICIAN, email="owner.comments@alpha.example")
    recipient = member(org_a, Role.EXTERNAL_CONSULTANT, email="recipient.comments@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner, title="Case C1")
    grant = grant_create(case=case, grantee=recipient, permissions=["view"], by=owner,
                         expires_at=timezone.now() + timedelta(days=1))
    response = client_as(owner).get(reverse("sharing:my_shares"))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-grant="{grant.public_id}"' in page and 'data-testid="revoke"' in page
    assert "{#" not in page and "#}" not in page
