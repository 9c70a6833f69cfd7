"""A notice about a case whose share ended when the case was closed names the case as "Shared
with me" names that share on the same page, by the title it had when the share ended (found by
QA: once the case was closed, "A case was shared with you" said nothing of which case, its
reader no longer seeing the case, ``policy.notices_naming``). Never by a title given after, nor
in the e-mail; a share revoked by hand leaves its notices unnamed, as before
(tests/sharing/test_notification_names_access.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.cases import services as case_services
from apps.sharing import services
from apps.sharing.models import Grant
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import working_in

pytestmark = pytest.mark.django_db

RECEIVED = "A case was shared with you in Lightbox. It is listed under Shared with me."


def _notices(client) -> str:
    html = client.get(reverse("sharing:shared_with_me")).content.decode()
    return html.split('data-testid="notifications"')[1].split("</ul>")[0]


def _share(case, owner, consultant, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                              recipient_kind=RecipientKind.USER, grantee=consultant)


def test_a_closed_cases_share_notice_names_the_case(org_a, case, owner, consultant, client, mailoutbox,
                                                     django_capture_on_commit_callbacks):
    case.title = "Pqr hilar mass"
    case.save()
    _share(case, owner, consultant, django_capture_on_commit_callbacks)
    client.force_login(consultant)
    working_in(client, org_a)
    assert f"Case “Pqr hilar mass”: {RECEIVED}" in _notices(client)

    case_services.case_close(case=case, by=owner)
    assert Grant.objects.get(case=case, grantee=consultant).state() == "ended_case_closed"
    assert f"Case “Pqr hilar mass”: {RECEIVED}" in _notices(client)
    assert all("Pqr" not in m.subject and "Pqr" not in m.body for m in mailoutbox)  # the e-mail never names it

    # renamed after it closed: named by the title the share ended with, as Shared with me names it
    case_services.case_reopen(case=case, by=owner)
    case.refresh_from_db()
    case_services.case_update(case=case, by=owner, values={"title": "Pqr - Jane Roe"})
    notices = _notices(client)
    assert f"Case “Pqr hilar mass”: {RECEIVED}" in notices and "Jane Roe" not in notices


def test_a_share_revoked_by_hand_still_leaves_its_notice_unnamed(org_a, case, owner, consultant, client,
                                                                 django_capture_on_commit_callbacks):
    case.title = "Pqr hilar mass"
    case.save()
    _share(case, owner, consultant, django_capture_on_commit_callbacks)
    grant = Grant.objects.get(case=case, grantee=consultant)
    services.grants_revoke(grants=[grant], by=owner, reason="revoked")
    case_services.case_close(case=case, by=owner)  # closed after: its share had ended already
    client.force_login(consultant)
    working_in(client, org_a)
    notices = _notices(client)
    assert RECEIVED in notices and "Pqr" not in notices
