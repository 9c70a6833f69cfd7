"""Who may ask for the original DICOM under a grant (Action.REQUEST_ORIGINAL) is the policy's
decision, and the service that records the request, the shared-case page's button and the
"shared with me" link all follow it: for every kind of recipient, for outsiders and staff, and for
grants that are no longer live."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.models import OriginalRequest
from apps.sharing.policy import Action, OriginalRefusal
from tests.factories import (
    DEAD_GRANT_STATES,
    GrantFactory,
    StudyFactory,
    UserFactory,
    audit_write_fails,
    grant_kill,
    member,
    open_anonymous_link,
)

pytestmark = pytest.mark.django_db

PREVIEW = {"permissions": ["view", "download_preview"], "renditions": ["preview"]}
ORIGINAL = {"permissions": ["view", "download_original"], "renditions": ["original", "preview"]}


def _grant(case, **kwargs):
    return GrantFactory(organization=case.organization, case=case, **{"grantee": None, **PREVIEW, **kwargs})


def _named_grantee(case, org):
    user = member(org, Role.EXTERNAL_CONSULTANT)
    return user, _grant(case, grantee=user)


def _group_member(case, org):
    user = member(org, Role.EXTERNAL_CONSULTANT)
    grant = _grant(case, group_name="Board")
    grant.group_members.set([user, UserFactory()])
    return user, grant


def _invited_not_yet_accepted(case, org):
    user = UserFactory(email="Invited@Example.org")
    return user, _grant(case, grantee_email="invited@example.org")


def _invitation_accepted(case, org):
    user = UserFactory(email="accepted@example.org")
    return user, _grant(case, grantee_email="accepted@example.org", grantee=user)


def _someone_else(case, org):
    _named_grantee(case, org)
    return member(org, Role.EXTERNAL_CONSULTANT), _grant(case, grantee=UserFactory())


def _other_group_member(case, org):
    grant = _grant(case, group_name="Board")
    grant.group_members.set([UserFactory()])
    return member(org, Role.EXTERNAL_CONSULTANT), grant


def _staff_coordinator(case, org):
    return member(org, Role.COORDINATOR), _grant(case, grantee=UserFactory())


def _staff_radiologist(case, org):
    """Downloads originals by role, but the grant is not theirs: refused, not "you already can"."""
    return member(org, Role.RADIOLOGIST), _grant(case, grantee=UserFactory())


def _anonymous_link_grant(case, org):
    return member(org, Role.EXTERNAL_CONSULTANT), _grant(case, grantee=None)


def _dead(state):
    def build(case, org):
        user, grant = _named_grantee(case, org)
        grant_kill(grant, user=user, state=state)
        return user, grant
    return build


def _mfa_not_passed(case, org):
    user = member(org, Role.EXTERNAL_CONSULTANT)
    return user, _grant(case, grantee=user, mfa_required=True)


def _mfa_passed(case, org):
    user, grant = _mfa_not_passed(case, org)
    user.is_verified = lambda: True
    return user, grant


def _already_has_original(case, org):
    user = member(org, Role.EXTERNAL_CONSULTANT)
    return user, _grant(case, grantee=user, **ORIGINAL)


def _original_through_another_grant(case, org):
    user, grant = _named_grantee(case, org)
    _grant(case, grantee=user, **ORIGINAL)
    return user, grant


def _study_share_with_its_original(case, org):
    """A one-study share that gives that study's original: nothing to ask for (the old service
    let its recipient ask, because no grant gives a whole-case download of a one-study share)."""
    user = member(org, Role.EXTERNAL_CONSULTANT)
    grant = _grant(case, grantee=user, **ORIGINAL)
    grant.studies.set([StudyFactory(organization=org, case=case)])
    StudyFactory(organization=org, case=case)  # another study of the case, not shared
    return user, grant


def _study_share_with_preview(case, org):
    user = member(org, Role.EXTERNAL_CONSULTANT)
    grant = _grant(case, grantee=user)
    grant.studies.set([StudyFactory(organization=org, case=case)])
    return user, grant


def _original_used_up(case, org):
    """The download limit is used up: they cannot download the original now, so they may ask."""
    user = member(org, Role.EXTERNAL_CONSULTANT)
    return user, _grant(case, grantee=user, download_limit=1, download_count=1, **ORIGINAL)


MAY = None
CASES = [
    ("named_grantee", _named_grantee, MAY),
    ("group_member", _group_member, MAY),
    ("invitation_accepted", _invitation_accepted, MAY),
    ("mfa_passed", _mfa_passed, MAY),
    ("study_share_with_preview", _study_share_with_preview, MAY),
    ("original_used_up", _original_used_up, MAY),
    ("someone_else", _someone_else, OriginalRefusal.NOT_RECIPIENT),
    ("other_group_member", _other_group_member, OriginalRefusal.NOT_RECIPIENT),
    # not theirs until they open its link (which binds it to them): the e-mail address alone
    # gives nothing, as for the case itself (tests below)
    ("invited_not_yet_accepted", _invited_not_yet_accepted, OriginalRefusal.NOT_RECIPIENT),
    ("staff_coordinator", _staff_coordinator, OriginalRefusal.NOT_RECIPIENT),
    ("staff_radiologist", _staff_radiologist, OriginalRefusal.NOT_RECIPIENT),
    ("anonymous_link_grant", _anonymous_link_grant, OriginalRefusal.NOT_RECIPIENT),
    ("mfa_not_passed", _mfa_not_passed, OriginalRefusal.NOT_RECIPIENT),
    *[(f"grant_{state}", _dead(state), OriginalRefusal.NOT_RECIPIENT)
      for state in DEAD_GRANT_STATES],
    ("already_has_original", _already_has_original, OriginalRefusal.HAS_ORIGINAL),
    ("original_through_another_grant", _original_through_another_grant, OriginalRefusal.HAS_ORIGINAL),
    ("study_share_with_its_original", _study_share_with_its_original, OriginalRefusal.HAS_ORIGINAL),
]


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_policy_and_the_service_agree(case, org_a, build, expected):
    user, grant = build(case, org_a)
    assert policy.original_request_refusal(user, grant) == expected
    assert policy.can(user, Action.REQUEST_ORIGINAL, grant) is (expected is MAY)
    # the answer for many grants at once (the pages) is the same rule's
    assert policy.original_request_refusals(user, [grant, grant]) == [expected, expected]
    assert policy.can_each(user, Action.REQUEST_ORIGINAL, [grant]) == [expected is MAY]
    reason = "Need the thin-slice series to measure."
    if expected is MAY:
        req = services.original_request_create(grant=grant, by=user, reason=reason)
        assert req.requested_by == user and req.grant == grant
    elif expected is OriginalRefusal.HAS_ORIGINAL:
        with pytest.raises(ValidationError, match="already download the original"):
            services.original_request_create(grant=grant, by=user, reason=reason)
        assert not AuditEvent.objects.filter(action="access.denied").exists()
    else:
        with pytest.raises(PermissionDenied):
            services.original_request_create(grant=grant, by=user, reason=reason)
        denial = AuditEvent.objects.get(action="access.denied")
        assert denial.outcome == "denied" and denial.organization_id == org_a.pk
        assert denial.target_id == str(grant.public_id) and denial.case_ref == case.public_id
        assert denial.details == {"wanted": "request_original"}
    assert OriginalRequest.objects.exists() is (expected is MAY)


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_pages_offer_what_the_policy_allows(case, org_a, client_as, build, expected):
    """The shared case's button and the "shared with me" link appear exactly when the service
    would take the request."""
    user, grant = build(case, org_a)
    if not user.is_active:
        pytest.skip("an inactive account signs in nowhere")
    if "is_verified" in user.__dict__:
        pytest.skip("a patched MFA state does not survive the test client's request")
    client = client_as(user)
    form_url = reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id})
    offered = expected is MAY
    page = client.get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id}))
    if page.status_code == 200:
        assert (form_url in page.content.decode()) is offered
    else:
        assert not offered
    mine = client.get(reverse("sharing:shared_with_me")).content.decode()
    assert (form_url in mine) is offered


def test_a_recipient_who_also_opened_an_anonymous_link_is_offered_only_their_own_grant(case, org_a, client_as):
    """The page used to offer the original under every grant the visitor holds, including an
    anonymous link's grant, under which the service refuses the request."""
    org_a.anonymous_links_enabled = True
    org_a.save()
    user, own = _named_grantee(case, org_a)
    anonymous = _grant(case, grantee=None)
    _link, raw = services.share_link_create(grant=anonymous, by=None, anonymous=True)
    client = client_as(user)
    assert open_anonymous_link(client, raw).status_code == 302
    page = client.get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id})).content.decode()
    url = "sharing:original_request_create"
    assert reverse(url, kwargs={"grant_id": own.public_id}) in page
    assert reverse(url, kwargs={"grant_id": anonymous.public_id}) not in page
    response = client.post(reverse(url, kwargs={"grant_id": anonymous.public_id}),
                           {"reason": "Need the thin-slice series to measure."})
    assert response.status_code in (403, 404)
    assert not OriginalRequest.objects.exists()


def test_a_one_study_share_with_its_original_is_not_offered_nor_taken(case, org_a, client_as):
    user, grant = _study_share_with_its_original(case, org_a)
    url = reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id})
    response = client_as(user).post(url, {"reason": "Need the thin-slice series to measure."})
    assert response.status_code == 400 and "already download the original" in response.content.decode()
    assert not OriginalRequest.objects.exists()


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_form_opens_for_whom_the_submit_is_for(case, org_a, client_as, build, expected):
    """GET asks the policy the submit asks: staff and others whose submit would be refused are
    refused the form too (403, recorded; 404 for a grant they cannot see at all); a recipient who
    can download the original already is sent back to the case."""
    user, grant = build(case, org_a)
    if not user.is_active:
        pytest.skip("an inactive account signs in nowhere")
    if "is_verified" in user.__dict__:
        pytest.skip("a patched MFA state does not survive the test client's request")
    response = client_as(user).get(reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id}))
    if expected is MAY:
        assert response.status_code == 200
    elif expected is OriginalRefusal.HAS_ORIGINAL:
        assert response.status_code == 302
        assert response["Location"] == reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    else:
        assert response.status_code in (403, 404)
        if response.status_code == 403:
            denial = AuditEvent.objects.get(action="access.denied")
            assert denial.details == {"wanted": "request_original"} and denial.actor == user


def test_an_invitation_is_the_invited_accounts_once_its_link_is_opened(case, org_a, owner, client_as):
    """Until the link sent to the address is opened (which binds the grant to the account), the
    account with that address holds nothing under it: not the case, not the "shared with me" row,
    not the request form, and not the request itself (refused and recorded, as the form is).
    Opening the link is also where its second factor is asked: the address alone must not do."""
    user = UserFactory(email="Invited@Example.org")
    grant, _link, raw = services.share_create(case=case, by=owner, use_case="second_opinion",
                                              recipient_kind="email", grantee_email="invited@example.org",
                                              renditions=["preview"], allow_download_original=False)
    client = client_as(user)
    form_url = reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id})
    reason = "Need the thin-slice series to measure."

    assert policy.original_request_refusal(user, grant) is OriginalRefusal.NOT_RECIPIENT
    assert policy.can_each(user, Action.REQUEST_ORIGINAL, [grant]) == [False]
    assert form_url not in client.get(reverse("sharing:shared_with_me")).content.decode()
    assert client.get(form_url).status_code == 404
    with pytest.raises(PermissionDenied):
        services.original_request_create(grant=grant, by=user, reason=reason)
    assert AuditEvent.objects.get(action="access.denied").details == {"wanted": "request_original"}
    assert not OriginalRequest.objects.exists()

    assert client.get(reverse("sharing:link_open", kwargs={"token": raw})).status_code == 302  # accepts it
    grant.refresh_from_db()
    assert grant.grantee == user
    assert policy.can(user, Action.REQUEST_ORIGINAL, grant)
    assert form_url in client.get(reverse("sharing:shared_with_me")).content.decode()
    assert client.get(form_url).status_code == 200
    assert client.post(form_url, {"reason": reason}).status_code == 302
    assert OriginalRequest.objects.get().requested_by == user


def test_a_request_is_never_kept_without_its_audit_event(case, org_a, monkeypatch):
    """The request and its event are one transaction: when the audit write fails, no request is
    left waiting for a decision (and no one is notified of it)."""
    from apps.sharing.models import Notification

    user, grant = _named_grantee(case, org_a)

    audit_write_fails(monkeypatch, services, "original_request.created")
    with pytest.raises(RuntimeError):
        services.original_request_create(grant=grant, by=user, reason="Need the full-resolution series.")
    assert not OriginalRequest.objects.exists()
    assert not Notification.objects.exists()
