"""Pages in Spanish show no English codes or texts: labels are looked up when the page is
rendered, in the reader's language (found by a crawl of the demo in Spanish)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.organizations.models import Role
from apps.sharing.services import grant_create
from tests.factories import CaseFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db
ES = {"HTTP_ACCEPT_LANGUAGE": "es"}


def test_an_invitation_refusal_is_in_the_readers_language(client):
    """The refusal texts were translated once, at import, in English."""
    html = client.get(reverse("accounts:invitation_accept", kwargs={"token": "bogus-token-123"}), **ES)
    text = html.content.decode()
    assert "Este enlace de invitación no es válido" in text and "This invitation link is not valid" not in text


@pytest.fixture
def shared():
    org = OrganizationFactory(mfa_required_roles=[])
    clinician = member(org, Role.CLINICIAN)
    consultant = member(org, Role.EXTERNAL_CONSULTANT)
    case = CaseFactory(organization=org, responsible_clinician=clinician)
    grant_create(case=case, grantee=consultant, permissions=["view", "download_preview"], by=clinician,
                 expires_at=timezone.now() + timedelta(days=2), renditions=["preview"])
    return {"case": case, "clinician": clinician, "consultant": consultant}


def test_received_shares_and_a_shared_case_name_states_and_images_in_spanish(shared, client_as):
    client = client_as(shared["consultant"])
    received = client.get(reverse("sharing:shared_with_me"), **ES).content.decode()
    assert ">Activo</span>" in received and ">active</span>" not in received
    case = client.get(reverse("sharing:shared_case", kwargs={"case_id": shared["case"].public_id}), **ES)
    assert "Vista previa comprimida" in case.content.decode()


def test_the_case_pages_recent_access_names_each_action(shared, client_as):
    client = client_as(shared["clinician"])
    client.get(shared["case"].get_absolute_url())  # recorded: case.viewed
    html = client.get(shared["case"].get_absolute_url(), **ES).content.decode()
    assert "Página del caso consultada" in html and "<code>case.viewed</code>" not in html


def test_an_event_about_the_signed_in_user_names_its_target_user(shared, rf):
    """request.user is a lazy object: its class name is not the model's."""
    from django.utils.functional import SimpleLazyObject

    user = shared["clinician"]
    record(action="access.denied", actor=user, target=SimpleLazyObject(lambda: user), outcome="denied")
    assert AuditEvent.objects.latest("pk").target_type == "user"


def test_starting_and_ending_a_board_say_meeting_not_signed_in(client_as):
    """"Meeting started" was "Sesión iniciada", which Spanish readers take for "Signed in"."""
    from apps.cases.models import BoardSession

    org = OrganizationFactory(mfa_required_roles=[])
    host = member(org, Role.RADIOLOGIST)
    board = BoardSession.objects.create(organization=org, title="Board", host=host,
                                        meeting_at=timezone.now() + timedelta(days=1))
    client = client_as(host)
    for name, said in (("cases:board_start", "Reunión iniciada"), ("cases:board_end", "Reunión finalizada")):
        page = client.post(reverse(name, kwargs={"boardsession_id": board.public_id}), follow=True, **ES)
        text = page.content.decode()
        assert said in text and "Sesión" not in text


def test_a_board_of_one_grant_says_one_grant_in_the_singular(client_as):
    """"(1 permisos de acceso)": the count of grants is a plural form, not a fixed plural."""
    from apps.cases import services as case_services

    org = OrganizationFactory(mfa_required_roles=[])
    host = member(org, Role.RADIOLOGIST)
    consultant = member(org, Role.EXTERNAL_CONSULTANT)
    board = case_services.board_create(organization=org, by=host, host=host, title="Board",
                                       meeting_at=timezone.now() + timedelta(hours=2), review_days=5,
                                       cases=[CaseFactory(organization=org)], participants=[consultant, host])
    client = client_as(host)
    for name in ("cases:board_start", "cases:board_end"):
        page = client.post(reverse(name, kwargs={"boardsession_id": board.public_id}), follow=True, **ES)
        text = page.content.decode()
        assert "(1 permiso de acceso)" in text and "1 permisos" not in text
