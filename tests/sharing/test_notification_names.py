"""In-app notices name what they are about by its title (found by QA: two boards' meetings
started gave two identical "A tumor board meeting you take part in has started" lines, and "Your
request for the original DICOM was approved" named no case). The title is read from the board or
case when the notice is shown (``Notification.message_shown``), never copied into the text, which
is also the e-mail's: the e-mail names neither (a case's title is free text that may name the
patient; e-mail carries no PHI)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.cases import services as case_services
from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import Notification
from tests.factories import CaseFactory, member, working_in

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}


def _notices(client) -> str:
    html = client.get(reverse("sharing:shared_with_me")).content.decode()
    return html.split('data-testid="notifications"')[1].split("</ul>")[0]


def _mails_to(user) -> str:
    return "\n".join(f"{m.subject}\n{m.body}" for m in mail.outbox if user.email in m.to)


def test_two_boards_started_are_told_apart_by_their_titles(org_a, client, django_capture_on_commit_callbacks):
    host = member(org_a, Role.RADIOLOGIST, email="host@alpha.example")
    participant = member(org_a, Role.EXTERNAL_CONSULTANT, email="participant@alpha.example")
    for title, case_title in (("Thoracic board Wednesday", "Zyx lung nodule"), ("Neuro board Friday", "Qwv glioma")):
        board = case_services.board_create(organization=org_a, by=host, host=host, title=title,
                                           meeting_at=timezone.now() + timedelta(hours=2), review_days=6,
                                           cases=[CaseFactory(organization=org_a, title=case_title)],
                                           participants=[participant])
        with django_capture_on_commit_callbacks(execute=True):
            case_services.board_start(board=board, by=host)
    client.force_login(participant)
    working_in(client, org_a)
    notices = _notices(client)
    assert "Tumor board “Thoracic board Wednesday”: A tumor board meeting you take part in has started" in notices
    assert "Tumor board “Neuro board Friday”: A tumor board meeting you take part in has started" in notices
    told = _mails_to(participant)
    assert told.count("has started") >= 2
    for title in ("Thoracic board", "Neuro board", "Zyx lung nodule", "Qwv glioma"):
        assert title not in told  # nor stored in the text the e-mail is made of
        assert not Notification.objects.filter(message__contains=title).exists()


def test_a_decided_request_names_its_case_in_app_only(org_a, case, owner, consultant, radiologist, client,
                                                       django_capture_on_commit_callbacks):
    case.title = "Pqr hilar mass"
    case.save()
    grant = services.grant_create(case=case, grantee=consultant, by=owner,
                                  expires_at=timezone.now() + timedelta(hours=10), **PREVIEW)
    with django_capture_on_commit_callbacks(execute=True):
        req = services.original_request_create(grant=grant, by=consultant, reason="Need the thin slices to measure.")
        services.original_request_decide(original_request=req, by=radiologist, approve=True, hours=12)
    client.force_login(consultant)
    working_in(client, org_a)
    notices = _notices(client)
    assert "Case “Pqr hilar mass”: Your request for the original DICOM was approved" in notices
    assert "Case “Pqr hilar mass”: Your request for the original DICOM was sent." in notices
    assert "Pqr hilar mass" not in _mails_to(consultant) and "Pqr hilar mass" not in _mails_to(radiologist)
    assert "Your request for the original DICOM was approved" in _mails_to(consultant)
    # the title as it is now, and nothing of a case since deleted
    case.title = "Renamed case"
    case.save()
    assert "Case “Renamed case”: Your request" in _notices(client)
    note = Notification.objects.filter(user=consultant, verb="original_request.approved").get()
    Notification.objects.filter(pk=note.pk).update(case=None)
    note.refresh_from_db()
    assert note.message_shown.startswith("Your request for the original DICOM was approved")
