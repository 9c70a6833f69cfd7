"""Approving (or declining) a request for the original DICOM asks for a recent second factor, as
sharing does (found by QA: a clinician with no authenticator approved a consultant's request and
the consultant downloaded the original). Whoever may decide is sent to the step-up page (or, with
no authenticator, to set one up) on opening the request, and a decision posted without one is
refused: the request stays pending, nothing approved. Once verified, they decide."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from apps.organizations.models import Role
from apps.sharing import services
from apps.sharing.models import Grant, OriginalRequestStatus
from apps.sharing.views import ORIGINAL_DECIDE_STEP_UP_WHY
from tests.accounts.conftest import enrol, stale_second_factor_client, totp_code
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

STEP_UP = "/accounts/mfa/step-up/"


@pytest.fixture(autouse=True)
def _mfa_enforced(settings):
    settings.LIGHTBOX_MFA_ENFORCED = True


@pytest.fixture
def request_of(org_a):
    owner = member(org_a, Role.CLINICIAN, email="decider.su@alpha.example")
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="asker.su@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)
    share = services.grant_create(case=case, grantee=consultant, permissions=["view", "download_preview"],
                                  renditions=["preview"], by=owner, use_case="telehealth",
                                  expires_at=timezone.now() + timedelta(hours=8))
    req = services.original_request_create(grant=share, by=consultant, reason="Need the thin-slice series.")
    return owner, consultant, req


def _url(req) -> str:
    return reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})


def _sent_to_step_up(response, url: str) -> None:
    assert response.status_code == 302
    where = urlsplit(response["Location"])
    assert where.path == STEP_UP and parse_qs(where.query)["next"] == [url]


@pytest.mark.parametrize("decision", ["approve", "decline"])
def test_a_decider_with_no_authenticator_is_sent_to_set_one_up_and_the_request_stays_pending(
        client_as, request_of, decision):
    owner, consultant, req = request_of
    client = client_as(owner)
    _sent_to_step_up(client.get(_url(req)), _url(req))
    response = client.post(_url(req), {"decision": decision, "hours": 4, "note": ""})
    _sent_to_step_up(response, _url(req))
    setup = client.get(response["Location"])  # no authenticator: to its enrolment, which says why
    assert setup.status_code == 302 and setup["Location"].startswith(reverse("accounts:mfa_setup"))
    assert escape(str(ORIGINAL_DECIDE_STEP_UP_WHY)) in client.get(setup["Location"]).content.decode()
    req.refresh_from_db()
    assert req.status == OriginalRequestStatus.PENDING and req.decided_by_id is None
    assert not any("download_original" in g.permissions for g in Grant.objects.filter(grantee=consultant))


def test_a_decider_whose_second_factor_is_stale_is_asked_again(request_of):
    owner, _consultant, req = request_of
    client, _device = stale_second_factor_client(owner)
    _sent_to_step_up(client.post(_url(req), {"decision": "approve", "hours": 4}), _url(req))
    req.refresh_from_db()
    assert req.status == OriginalRequestStatus.PENDING


@pytest.mark.parametrize(("decision", "status"), [("approve", OriginalRequestStatus.APPROVED),
                                                  ("decline", OriginalRequestStatus.DECLINED)])
def test_a_recently_verified_decider_decides(client_as, request_of, decision, status):
    owner, _consultant, req = request_of
    device = enrol(owner)
    client = client_as(owner)
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    assert client.get(_url(req)).status_code == 200
    response = client.post(_url(req), {"decision": decision, "hours": 4, "note": ""})
    assert response.status_code == 302 and response["Location"] == reverse("sharing:my_shares")
    req.refresh_from_db()
    assert req.status == status and req.decided_by == owner

