"""The upload page says, once a case is chosen, whom a study uploaded into it reaches beyond the
staff (its shares on the whole case, its tumor boards), in the attach page's words (found by QA: a
study uploaded into a shared case reached its patient and its consultants at once, with no word
before). Rendered with the page for a case chosen from its page; fetched from
``imaging:upload_case_reach`` when the choice changes (the browser side:
tests/browser/test_upload_processing.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases.models import CaseStatus
from apps.organizations.models import Role
from apps.sharing import services as sharing
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

REACH = reverse("imaging:upload_case_reach")


@pytest.fixture
def clinician(org_a):
    return member(org_a, Role.CLINICIAN, email="clinician@alpha.example")


@pytest.fixture
def shared(org_a, clinician):
    """A case shared as a whole with an external consultant."""
    case = CaseFactory(organization=org_a, created_by=clinician, responsible_clinician=clinician,
                       title="Chest CT - second opinion")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    sharing.grant_create(case=case, grantee=consultant, by=clinician, permissions=["view"],
                         expires_at=timezone.now() + timedelta(hours=2))
    return case


def _box(html: str) -> str:
    start = html.index('<div id="upload-case-reach"')
    return html[start:html.index("</div>", start)]


def test_a_shared_case_chosen_from_its_page_is_said_to_reach_its_recipients(client_as, clinician, shared):
    html = client_as(clinician).get(reverse("imaging:upload"), {"case": str(shared.public_id)}).content.decode()
    assert "{#" not in html and "#}" not in html
    box = _box(html)
    assert "hidden" not in box.split(">", 1)[0] and "message-warning" in box.split(">", 1)[0]
    assert "once uploaded, the study is also seen by" in box
    assert "consultant@alpha.example" in box and 'data-testid="attach-reaches"' in box


def test_no_case_chosen_says_nothing(client_as, clinician, shared):
    html = client_as(clinician).get(reverse("imaging:upload")).content.decode()
    box = _box(html)
    assert " hidden" in box.split(">", 1)[0] and "consultant@alpha.example" not in box


def test_the_case_chosen_on_the_page_is_told_by_the_endpoint(client_as, org_a, clinician, shared):
    client = client_as(clinician)
    response = client.get(REACH, {"case": str(shared.public_id)})
    assert response.status_code == 200
    html = response.content.decode()
    assert "once uploaded, the study is also seen by" in html and "consultant@alpha.example" in html
    lone = CaseFactory(organization=org_a, created_by=clinician, responsible_clinician=clinician)
    html = client.get(REACH, {"case": str(lone.public_id)}).content.decode()
    assert 'data-testid="attach-reaches-nobody"' in html and "uploading into it gives no one else access" in html
    assert client.get(REACH, {"case": ""}).content == b""


def test_the_endpoint_in_spanish(client_as, clinician, shared):
    client = client_as(clinician)
    response = client.get(REACH, {"case": str(shared.public_id)}, HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 200 and "consultant@alpha.example" in response.content.decode()


@pytest.mark.parametrize("value", ["garbage", "00000000-0000-0000-0000-000000000000", "x" * 5000, "\x00"])
def test_an_id_naming_no_case_is_404_not_a_500(client_as, clinician, value):
    assert client_as(clinician).get(REACH, {"case": value}).status_code == 404


def test_a_case_the_user_may_not_upload_into_is_404_and_the_probe_recorded(client_as, org_a, org_b, clinician,
                                                                           shared):
    other = CaseFactory(organization=org_b, title="Elsewhere")
    response = client_as(clinician).get(REACH, {"case": str(other.public_id)})
    assert response.status_code == 404 and b"Elsewhere" not in response.content
    assert AuditEvent.objects.filter(organization_id=org_b.pk, actor=clinician).exists()
    closed = CaseFactory(organization=org_a, created_by=clinician, responsible_clinician=clinician,
                         status=CaseStatus.CLOSED)
    assert client_as(clinician).get(REACH, {"case": str(closed.public_id)}).status_code == 404


def test_whoever_may_not_upload_learns_nothing(client_as, org_a, shared):
    consultant = shared.grants.get().grantee
    response = client_as(consultant).get(REACH, {"case": str(shared.public_id)})
    assert response.status_code in (403, 404) and b"consultant@alpha.example" not in response.content
    assert client_as(None).get(REACH, {"case": str(shared.public_id)}).status_code == 302
