"""The lists name a grant made by a tumor board's meeting or by an approved request for the
original by how it was made, not by the template it carries: a board meeting's grant was named
"Tumor board review" (whose template gives the original DICOM) while it gives view only, and an
approval showed as a second share identical to the one it was asked under (found by QA)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing.models import GrantSource
from apps.sharing.usecases import UseCase
from tests.factories import CaseFactory, GrantFactory, member

pytestmark = pytest.mark.django_db


def _cells(html: str) -> str:
    return html.split('data-testid="shared-with-me"', 1)[1]


def test_shared_with_me_names_board_and_approval_grants_by_how_they_were_made(org_a, client_as):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    board_case, shared_case = CaseFactory(organization=org_a), CaseFactory(organization=org_a)
    GrantFactory(organization=org_a, case=board_case, grantee=consultant, use_case=UseCase.TUMOR_BOARD,
                 source=GrantSource.BOARD)
    GrantFactory(organization=org_a, case=shared_case, grantee=consultant, use_case=UseCase.CONSULTANT)
    GrantFactory(organization=org_a, case=shared_case, grantee=consultant, use_case=UseCase.CONSULTANT,
                 source=GrantSource.ORIGINAL_REQUEST, permissions=["view", "download_original"])
    html = _cells(client_as(consultant).get(reverse("sharing:shared_with_me")).content.decode())
    assert "Tumor board meeting" in html and "Tumor board review" not in html
    assert "Original DICOM (approved request)" in html
    assert html.count(str(UseCase.CONSULTANT.label)) == 1  # the share itself keeps its template's name


def test_the_shared_case_page_names_them_the_same_way(org_a, client_as):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org_a)
    GrantFactory(organization=org_a, case=case, grantee=consultant, use_case=UseCase.TUMOR_BOARD,
                 source=GrantSource.BOARD)
    page = client_as(consultant).get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id}))
    html = page.content.decode()
    assert "Tumor board meeting" in html and "Tumor board review" not in html
