"""Someone sent from the share steps to pass or set up their second factor is told why: the
share views check the case first and ask for the second factor in the steps they call, so the
pages, which read the view a path resolves to, said nothing (found by QA on the demo)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from apps.organizations.models import Role
from apps.sharing.views import SHARE_STEP_UP_WHY
from tests.factories import CaseFactory, StudyFactory, member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page", ["case", "study"])
def test_the_enrolment_page_says_sharing_asks_for_a_second_factor(settings, client_as, org_a, page):
    settings.LIGHTBOX_MFA_ENFORCED = True
    clinician = member(org_a, Role.CLINICIAN, email="sharer@alpha.example")
    case = CaseFactory(organization=org_a, created_by=clinician)
    study = StudyFactory(organization=org_a, case=case)
    url = (reverse("sharing:case_share", kwargs={"case_id": case.public_id}) if page == "case"
           else reverse("sharing:study_share", kwargs={"study_id": study.public_id}))
    client = client_as(clinician)
    r = client.get(url)
    assert r["Location"].startswith(reverse("accounts:step_up"))
    r = client.get(r["Location"])
    assert r.status_code == 302 and r["Location"].startswith(reverse("accounts:mfa_setup"))
    html = client.get(r["Location"]).content.decode()
    assert 'data-testid="step-up-why"' in html
    assert escape(str(SHARE_STEP_UP_WHY)) in html

