"""A share's life end to end through the REST API and the pages: create from a template, expiry,
extension with a reason (never past the maximum), renewal to a fresh link, revocation on the
next request, and the "request the original DICOM" flow with notifications on both sides."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from apps.audit.models import AuditEvent
from apps.sharing.models import Grant, GrantExtension, Notification, OriginalRequest, SharingPolicy
from tests.factories import GrantFactory, UserFactory

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _create(owner, case, recipient, use_case="consultant", **extra):
    body = {"case": str(case.public_id), "use_case": use_case, "recipient_kind": "user",
            "recipient_email": recipient.email, **extra}
    return _client(owner).post("/api/v1/grants/", body, content_type="application/json")


def _open(client: Client, link: str):
    return client.get(link.split("testserver", 1)[1])


def test_create_list_revoke_through_the_api(owner, case, consultant):
    response = _create(owner, case, consultant, use_case="second_opinion")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["state"] == "active" and data["use_case"] == "second_opinion"
    assert data["link"].startswith("http://testserver/s/")
    hours = (Grant.objects.get(public_id=data["id"]).expires_at - timezone.now()).total_seconds() / 3600
    assert 47.9 < hours <= 48  # the template's default, the shortest practical
    listed = _client(owner).get("/api/v1/grants/?mine=1").json()
    assert [g["id"] for g in listed["results"]] == [data["id"]]
    received = _client(consultant).get("/api/v1/grants/received/").json()
    assert received["count"] == 1 and [g["id"] for g in received["results"]] == [data["id"]]
    # the recipient reads the case; revocation takes effect on the very next request
    recipient = _client(consultant)
    assert _open(recipient, data["link"]).status_code == 302
    case_url = reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    assert recipient.get(case_url).status_code == 200
    revoked = _client(owner).post(f"/api/v1/grants/{data['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert recipient.get(case_url).status_code == 404
    assert _open(recipient, data["link"]).status_code == 410
    # a recipient cannot revoke, extend or even see a grant through the management API
    assert _client(consultant).post(f"/api/v1/grants/{data['id']}/revoke/").status_code == 404


def test_over_the_maximum_is_refused(owner, case, consultant):
    response = _create(owner, case, consultant, use_case="second_opinion", hours=73)
    assert response.status_code == 400
    # the organization may narrow the table
    SharingPolicy.objects.update_or_create(organization=case.organization,
                                           defaults={"template_settings": {"second_opinion": {"max_hours": 24}}})
    assert _create(owner, case, consultant, use_case="second_opinion", hours=30).status_code == 400
    assert _create(owner, case, consultant, use_case="second_opinion").json()["state"] == "active"


def test_expiry_extension_with_reason_and_renewal(owner, case, consultant):
    data = _create(owner, case, consultant, use_case="telehealth", hours=4).json()
    grant = Grant.objects.get(public_id=data["id"])
    api = _client(owner)
    url = f"/api/v1/grants/{data['id']}/extend/"
    # a reason is required
    later = (grant.expires_at + timedelta(hours=2)).isoformat()
    assert api.post(url, {"expires_at": later, "reason": ""}, content_type="application/json").status_code == 400
    # never past the organization's maximum (24 h for telehealth)
    too_late = (grant.starts_at + timedelta(hours=25)).isoformat()
    response = api.post(url, {"expires_at": too_late, "reason": "Patient rebooked for tomorrow."},
                        content_type="application/json")
    assert response.status_code == 400
    response = api.post(url, {"expires_at": later, "reason": "Triage call moved to the evening."},
                        content_type="application/json")
    assert response.status_code == 200, response.content
    grant.refresh_from_db()
    assert grant.expires_at == datetime.fromisoformat(later)
    ext = GrantExtension.objects.get(grant=grant)
    assert ext.reason == "Triage call moved to the evening." and ext.by == owner
    assert AuditEvent.objects.filter(action="grant.extended", target_id=str(grant.public_id)).exists()
    # expiry: the recipient is refused after the end
    recipient = _client(consultant)
    assert _open(recipient, data["link"]).status_code == 302
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert recipient.get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id})).status_code == 404
    assert _open(recipient, data["link"]).status_code == 410
    # telehealth is not renewable
    assert api.post(f"/api/v1/grants/{data['id']}/renew/").status_code == 400


def test_renewal_issues_a_fresh_link_and_ends_the_old(owner, case, consultant):
    consultant.is_verified = lambda: True
    data = _create(owner, case, consultant, use_case="consultant").json()
    response = _client(owner).post(f"/api/v1/grants/{data['id']}/renew/", {"hours": 48},
                                   content_type="application/json")
    assert response.status_code == 201, response.content
    new = response.json()
    assert new["id"] != data["id"] and new["link"] != data["link"] and new["state"] == "active"
    old = Grant.objects.get(public_id=data["id"])
    assert old.revoked_at is not None and old.revoke_reason == "renewed"
    assert Grant.objects.get(public_id=new["id"]).renewed_from == old
    # the old link is dead, the fresh one opens (for the named recipient, signed in)
    recipient = _client(consultant)
    assert _open(recipient, data["link"]).status_code == 410
    response = _open(recipient, new["link"])
    assert response.status_code in (302, 403)  # 403 only because force_login carries no MFA
    assert b"mfa_required" in response.content or response.status_code == 302


def test_original_request_flow_through_the_pages(owner, case, consultant, radiologist):
    from apps.sharing import policy
    from apps.sharing.policy import Action

    data = _create(owner, case, consultant, use_case="second_opinion").json()
    # make it a preview-only share
    Grant.objects.filter(public_id=data["id"]).update(permissions=["view", "download_preview"],
                                                      renditions=["preview"])
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)
    recipient = _client(consultant)
    form_url = reverse("sharing:original_request_create", kwargs={"grant_id": data["id"]})
    assert recipient.get(form_url).status_code == 200
    assert recipient.post(form_url, {"reason": "short"}).status_code == 400
    assert recipient.post(form_url, {"reason": "Need the thin-slice series to measure."}).status_code == 302
    req = OriginalRequest.objects.get()
    # the deciders (owner, radiologists) are told, in the app and by e-mail, without PHI
    assert set(Notification.objects.filter(verb="original_request.created").values_list("user__email", flat=True)) \
        == {owner.email, radiologist.email}
    assert any(radiologist.email in m.to for m in mail.outbox)
    for message in mail.outbox:
        assert case.patient.name not in message.body and case.patient.mrn not in message.body
        assert case.title not in message.body
    decide_url = reverse("sharing:original_request_decide", kwargs={"originalrequest_id": req.public_id})
    # someone else on the staff, not owner nor radiologist: may read, may not decide
    bystander = UserFactory(email="coordinator@alpha.example")
    from tests.factories import MembershipFactory

    MembershipFactory(user=bystander, organization=case.organization, role="coordinator")
    assert _client(bystander).post(decide_url, {"decision": "approve", "hours": 12}).status_code == 403
    # the recipient cannot decide their own request
    assert recipient.post(decide_url, {"decision": "approve", "hours": 12}).status_code == 404
    mail.outbox.clear()
    response = _client(radiologist).post(decide_url, {"decision": "approve", "hours": 12})
    assert response.status_code == 302
    req.refresh_from_db()
    assert req.status == "approved" and req.decided_by == radiologist
    assert policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)
    approved = req.approved_grant
    assert timedelta(hours=11, minutes=59) < approved.expires_at - timezone.now() <= timedelta(hours=12)
    assert Notification.objects.filter(user=consultant, verb="original_request.approved").exists()
    assert Notification.objects.filter(user=radiologist, verb="original_request.approved").exists()
    assert {tuple(m.to) for m in mail.outbox} == {(consultant.email,), (radiologist.email,)}
    # the page shows the request decided; deciding twice is refused
    assert _client(radiologist).post(decide_url, {"decision": "decline"}).status_code == 400
    # after the approval lapses, the preview grant is what remains
    Grant.objects.filter(pk=approved.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)


def test_declined_request_notifies_both(owner, case, consultant):
    from apps.sharing import services

    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=4))
    req = services.original_request_create(grant=grant, by=consultant, reason="Need the full series please.")
    services.original_request_decide(original_request=req, by=owner, approve=False, note="Preview suffices.")
    req.refresh_from_db()
    assert req.status == "declined" and req.approved_grant is None
    assert Notification.objects.filter(user=consultant, verb="original_request.declined").exists()
    assert Notification.objects.filter(user=owner, verb="original_request.declined").exists()
    page = _client(consultant).get(reverse("sharing:shared_with_me"))
    assert b"declined" in page.content


def test_a_notice_is_shown_in_its_readers_language_not_its_senders(owner, case, consultant):
    """The consultant asks in Spanish and the owner decides in English: each reads their notices
    in the language of the page they are on; each e-mail goes in its recipient's language (the
    one they chose, else the portal's default), never in that of the request that caused it."""
    from apps.sharing import services

    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=24))  # outlasts the approval
    with translation.override("es"):
        req = services.original_request_create(grant=grant, by=consultant, reason="Necesito la serie completa.")
    (to_owner,) = [m for m in mail.outbox if m.to == [owner.email]]
    # the owner chose no language: the portal's default, not the requester's Spanish
    assert to_owner.body.startswith("A recipient asked for the original DICOM")
    with translation.override("en"):
        services.original_request_decide(original_request=req, by=owner, approve=True, hours=12)
    notice = Notification.objects.get(user=consultant, verb="original_request.approved")
    assert notice.message == "Your request for the original DICOM was approved for 12 hours."
    spanish = "Su solicitud del DICOM original se ha aprobado durante 12 horas."
    page = _client(consultant).get(reverse("sharing:shared_with_me"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert spanish in page and "Your request for the original DICOM was sent" not in page
    page = _client(owner).get(reverse("sharing:shared_with_me"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "A recipient asked for the original DICOM of a shared case." in page


def test_an_e_mail_goes_in_its_recipients_chosen_language_whoever_caused_it(owner, case, consultant):
    """The consultant chose Spanish (User.language); the owner, deciding in English, sends them a
    Spanish e-mail, and gets their own in English."""
    from apps.sharing import services

    consultant.language = "es"
    consultant.save(update_fields=["language"])
    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=24))  # outlasts the approval
    with translation.override("en"):
        req = services.original_request_create(grant=grant, by=consultant, reason="Full series please.")
        mail.outbox.clear()
        services.original_request_decide(original_request=req, by=owner, approve=True, hours=12)
    (to_consultant,) = [m for m in mail.outbox if m.to == [consultant.email]]
    assert to_consultant.body.startswith("Su solicitud del DICOM original se ha aprobado durante 12 horas.")
    assert to_consultant.subject.startswith("[Lightbox] Su solicitud")
    (to_owner,) = [m for m in mail.outbox if m.to == [owner.email]]
    assert to_owner.body.startswith("You decided a request")


def test_openapi_schema_documents_the_grants_api(client_as, admin_a):
    response = client_as(admin_a).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].endswith("json") else None
    text = response.content.decode()
    for path in ("/api/v1/grants/", "/api/v1/grants/{grant_id}/revoke/", "/api/v1/grants/{grant_id}/extend/",
                 "/api/v1/grants/{grant_id}/renew/", "/api/v1/grants/received/"):
        assert path in text, path
    if schema:
        assert "post" in schema["paths"]["/api/v1/grants/"]


def test_received_grants_are_paginated_as_the_schema_says(org_a, case, consultant):
    """"Shared with me" pages like every list (it was a bare list cut at 200 grants, while the
    OpenAPI schema promised the paginated shape): none is dropped, newest first."""
    grants = GrantFactory.create_batch(52, organization=org_a, case=case, grantee=consultant)
    first = _client(consultant).get("/api/v1/grants/received/").json()
    assert first["count"] == 52 and len(first["results"]) == 50 and first["next"]
    second = _client(consultant).get("/api/v1/grants/received/?page=2").json()
    ids = [g["id"] for g in first["results"] + second["results"]]
    assert sorted(ids) == sorted(str(g.public_id) for g in grants)
    schema = _client(consultant).get("/api/schema/?format=json").json()
    ref = schema["paths"]["/api/v1/grants/received/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ref["schema"]["$ref"].endswith("/PaginatedGrantOutputList")


def test_asking_for_the_original_of_someone_elses_share_is_refused_and_recorded(owner, case, consultant, org_a):
    """Staff see their organization's grants, but only the grant's recipient may ask for the
    original under it: anyone else gets 403, and the refusal is in the trail like every denial."""
    from apps.organizations.models import Role
    from apps.sharing import services
    from tests.factories import member

    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=4))
    coordinator = member(org_a, Role.COORDINATOR)
    url = reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id})
    response = _client(coordinator).post(url, {"reason": "I would like the originals too."})
    assert response.status_code == 403
    assert not OriginalRequest.objects.exists()
    denied = AuditEvent.objects.filter(action="access.denied", outcome="denied", actor=coordinator)
    assert denied.count() == 1 and denied.get().organization_id == org_a.pk


def test_a_share_names_only_studies_of_its_own_case(owner, case, consultant):
    """A study of another case of the organization is refused, nothing is created."""
    from django.core.exceptions import ValidationError

    from apps.sharing import services
    from tests.factories import CaseFactory, StudyFactory

    elsewhere = StudyFactory(organization=case.organization, case=CaseFactory(organization=case.organization))
    with pytest.raises(ValidationError, match="Only studies of this case can be shared from it"):
        services.share_create(case=case, by=owner, use_case="consultant", recipient_kind="user",
                              grantee=consultant, studies=[elsewhere])
    assert not Grant.objects.exists()
