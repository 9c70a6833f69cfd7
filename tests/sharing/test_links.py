"""Share links: identity-linked by default, anonymous only when the organization allows, second
factor with lockout, not-before time, use limit. Every refusal is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.sharing import policy, services
from apps.sharing.models import Grant, ShareLink
from apps.sharing.policy import Action
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import LINK_PASSCODE, UserFactory, anonymous_original_terms, open_anonymous_link

pytestmark = pytest.mark.django_db


def _url(raw):
    return reverse("sharing:link_open", kwargs={"token": raw})


def _anonymous(case, owner, **kwargs):
    case.organization.anonymous_links_enabled = True
    case.organization.save()
    return services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                 recipient_kind=RecipientKind.ANONYMOUS, **kwargs)


def test_token_is_long_random_and_stored_only_hashed(case, owner, consultant):
    grant, link, raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                             recipient_kind=RecipientKind.USER, grantee=consultant)
    assert len(raw) >= 43  # 32 random bytes, url-safe base64: 256 bits
    assert raw not in link.token_hash and len(link.token_hash) == 64
    assert not ShareLink.objects.filter(token_hash__contains=raw).exists()
    assert services.share_link_get(raw) == link
    assert services.share_link_get(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    # the shortest practical default of the template: 48 h for a second opinion
    assert abs((grant.expires_at - grant.starts_at) - timedelta(hours=48)) < timedelta(seconds=5)


def test_anonymous_links_cannot_be_created_while_the_org_has_them_off(case, owner, client_as):
    assert not case.organization.anonymous_links_enabled
    with pytest.raises(PermissionDenied):
        services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM, recipient_kind=RecipientKind.ANONYMOUS)
    assert not Grant.objects.exists()
    assert AuditEvent.objects.filter(action="share.refused", outcome="denied").exists()
    # nor through the API
    body = {"case": str(case.public_id), "use_case": "custom", "recipient_kind": "anonymous"}
    response = client_as(owner).post("/api/v1/grants/", body, content_type="application/json")
    assert response.status_code == 403
    assert not Grant.objects.exists()
    # once an org admin turns them on: at most 24 h, a download limit, previews only
    grant, link, _raw = _anonymous(case, owner, hours=24)
    assert link.anonymous and grant.download_limit is not None
    assert grant.expires_at - grant.starts_at <= timedelta(hours=24, seconds=5)
    assert "download_original" not in grant.permissions


def test_anonymous_link_holder_sees_banner_and_every_use_is_recorded(case, owner):
    grant, _link, raw = _anonymous(case, owner)
    visitor = Client()
    response = open_anonymous_link(visitor, raw)
    assert response.status_code == 302
    page = visitor.get(response["Location"])
    assert page.status_code == 200
    assert b'data-testid="anonymous-banner"' in page.content
    assert AuditEvent.objects.filter(action="grant.opened", target_id=str(grant.public_id)).count() == 1
    # revocable: the next request is refused
    services.grants_revoke(grants=[grant], by=owner, reason="test")
    assert visitor.get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id})).status_code == 404
    assert visitor.get(_url(raw)).status_code == 410
    # switching anonymous links off stops live ones too
    _grant2, _link2, raw2 = _anonymous(case, owner)
    holder = Client()
    assert open_anonymous_link(holder, raw2).status_code == 302
    case_url = reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    assert holder.get(case_url).status_code == 200
    case.organization.anonymous_links_enabled = False
    case.organization.save()
    assert Client().get(_url(raw2)).status_code == 403
    assert holder.get(case_url).status_code == 404  # an opened one stops on its next request


def _nothing_used(link, grant, audit_events: int, client: Client) -> None:
    link.refresh_from_db()
    grant.refresh_from_db()
    assert link.use_count == 0 and grant.open_count == 0
    assert AuditEvent.objects.count() == audit_events
    assert policy.LINK_SESSION_KEY not in client.session and services.OPENED_SESSION_KEY not in client.session
    case_url = reverse("sharing:shared_case", kwargs={"case_id": grant.case.public_id})
    assert client.get(case_url)["Location"].startswith("/accounts/login/")


def test_a_get_of_an_anonymous_link_changes_nothing_until_the_holder_confirms(case, owner):
    """Mail gateways (Safe Links, Mimecast, Proofpoint) fetch every URL of an e-mail before the
    recipient clicks. A GET of an anonymous link shows a page to confirm, saying nothing about the
    patient, and changes nothing: no use counted (a one-use link stays usable), no opening
    recorded, no access. Its POST opens the link as a GET did before."""
    grant, link, raw = _anonymous(case, owner, max_uses=1)
    events = AuditEvent.objects.count()
    scanner = Client()
    for _fetch in range(2):
        response = scanner.get(_url(raw))
        assert response.status_code == 200 and b'data-testid="link-confirm"' in response.content
        assert "no-store" in response["Cache-Control"]
        html = response.content.decode()
        assert case.organization.name in html and 'method="post"' in html and "csrfmiddlewaretoken" in html
        assert case.patient.name not in html and case.patient.mrn not in html and case.title not in html
        _nothing_used(link, grant, events, scanner)
    # the recipient, in their own browser: the page, then its button
    recipient = Client(enforce_csrf_checks=True)
    page = recipient.get(_url(raw))
    assert page.status_code == 200
    _nothing_used(link, grant, events, recipient)
    token = recipient.cookies["csrftoken"].value
    response = recipient.post(_url(raw), {"csrfmiddlewaretoken": token})
    case_url = reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    assert response.status_code == 302 and response["Location"] == case_url
    link.refresh_from_db()
    assert link.use_count == 1
    assert AuditEvent.objects.filter(action="grant.opened", target_id=str(grant.public_id)).count() == 1
    assert recipient.get(case_url).status_code == 200
    assert scanner.get(case_url)["Location"].startswith("/accounts/login/")  # the scanner holds nothing
    # used up: a GET is now refused, and recorded, as before
    response = Client().get(_url(raw))
    assert response.status_code == 403 and b'data-reason="used_up"' in response.content
    assert AuditEvent.objects.filter(action="share_link.refused", details__reason="used_up").count() == 1
    assert Client().post(_url(raw)).status_code == 403  # nor does a POST use it again
    link.refresh_from_db()
    assert link.use_count == 1


def test_only_anonymous_links_ask_for_confirmation(case, owner, consultant):
    """An identity-linked link still opens on a GET by its named recipient signed in (a mail
    gateway's fetch only gets the sign-in page); an anonymous one, opened by the same signed-in
    user, asks first."""
    named_grant, named, named_raw = services.share_create(
        case=case, by=owner, use_case=UseCase.SECOND_OPINION, recipient_kind=RecipientKind.USER,
        grantee=consultant, max_uses=1)
    _grant, anonymous, anonymous_raw = _anonymous(case, owner, max_uses=1)
    client = Client()
    client.force_login(consultant)
    response = client.get(_url(named_raw))
    assert response.status_code == 302
    assert response["Location"] == reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    response = client.get(_url(anonymous_raw))
    assert response.status_code == 200 and b'data-testid="link-confirm"' in response.content
    named.refresh_from_db()
    anonymous.refresh_from_db()
    assert (named.use_count, anonymous.use_count) == (1, 0)
    assert AuditEvent.objects.filter(action="grant.opened").count() == 1
    # a scanner, signed out, gets the page that says to sign in for the named link and uses nothing
    response = Client().get(_url(named_raw))
    assert response.status_code == 200 and b'data-testid="link-sign-in"' in response.content
    named_grant.refresh_from_db()
    assert named_grant.open_count == 1


def test_a_second_factor_is_asked_as_before_and_its_post_opens_the_link(case, owner):
    """A link with a passcode: a GET shows the passcode form (as before), whose right answer
    opens the link. Once passed in this session, a GET of the link again asks to confirm rather
    than using it."""
    _grant, link, raw = _anonymous(case, owner, second_factor="passcode", passcode="blue-kettle-42", max_uses=2)
    visitor = Client()
    response = visitor.get(_url(raw))
    assert response.status_code == 200 and b'name="value"' in response.content
    assert b'data-testid="link-confirm"' not in response.content
    response = visitor.post(_url(raw), {"value": "blue-kettle-42"})
    assert response.status_code == 302
    assert response["Location"] == reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    link.refresh_from_db()
    assert link.use_count == 1
    events = AuditEvent.objects.count()
    response = visitor.get(_url(raw))
    assert response.status_code == 200 and b'data-testid="link-confirm"' in response.content
    link.refresh_from_db()
    assert link.use_count == 1 and AuditEvent.objects.count() == events
    assert open_anonymous_link(visitor, raw).status_code == 302
    link.refresh_from_db()
    assert link.use_count == 2


def test_passcode_locks_after_five_wrong_tries(case, owner):
    grant, link, raw = _anonymous(case, owner, second_factor="passcode", passcode="blue-kettle-42")
    visitor = Client()
    assert visitor.get(_url(raw)).status_code == 200  # the passcode form
    for attempt in range(1, 5):
        response = visitor.post(_url(raw), {"value": "wrong-guess"})
        assert response.status_code == 400, attempt
    response = visitor.post(_url(raw), {"value": "wrong-guess"})
    assert response.status_code == 403 and b'data-reason="locked"' in response.content
    link.refresh_from_db()
    assert link.locked_at is not None and link.failed_attempts == 5
    # even the right passcode no longer opens it, from any browser
    assert Client().post(_url(raw), {"value": "blue-kettle-42"}).status_code == 403
    assert grant.open_count == 0
    assert AuditEvent.objects.filter(action="share_link.second_factor_failed").count() == 5


def test_right_passcode_opens_and_resets_the_counter(case, owner):
    _grant, link, raw = _anonymous(case, owner, second_factor="passcode", passcode="blue-kettle-42")
    visitor = Client()
    visitor.post(_url(raw), {"value": "nope-nope"})
    response = visitor.post(_url(raw), {"value": "blue-kettle-42"})
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.failed_attempts == 0 and link.use_count == 1


def test_birth_date_second_factor(case, owner):
    _grant, _link, raw = _anonymous(case, owner, second_factor="birth_date")
    visitor = Client()
    assert visitor.post(_url(raw), {"value": "1900-01-01"}).status_code == 400
    assert visitor.post(_url(raw), {"value": case.patient.birth_date.isoformat()}).status_code == 302


def test_not_before_and_use_limit_are_refused(case, owner, consultant):
    later = timezone.now() + timedelta(hours=3)
    grant, link, raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                             recipient_kind=RecipientKind.USER, grantee=consultant,
                                             not_before=later, max_uses=2)
    client = Client()
    client.force_login(consultant)
    response = client.get(_url(raw))
    assert response.status_code == 403 and b'data-reason="not_yet"' in response.content
    assert not policy.can(consultant, Action.VIEW_CASE, case)
    # the board's day arrives
    ShareLink.objects.filter(pk=link.pk).update(not_before=timezone.now() - timedelta(minutes=1))
    Grant.objects.filter(pk=grant.pk).update(starts_at=timezone.now() - timedelta(minutes=1))
    assert client.get(_url(raw)).status_code == 302
    assert client.get(_url(raw)).status_code == 302
    response = client.get(_url(raw))
    assert response.status_code == 403 and b'data-reason="used_up"' in response.content
    reasons = list(AuditEvent.objects.filter(action="share_link.refused").values_list("details__reason", flat=True))
    assert reasons == ["not_yet", "used_up"]


def test_identity_linked_link_requires_the_named_recipient(case, owner, consultant):
    _grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                             recipient_kind=RecipientKind.USER, grantee=consultant)
    # not signed in: sign in first (a page that says so, and what to do without an account)
    response = Client().get(_url(raw))
    assert response.status_code == 200 and b'data-testid="link-sign-in"' in response.content
    assert f'href="/accounts/login/?next=%2Fs%2F{raw}%2F"'.encode() in response.content
    # someone else signed in: refused and recorded
    stranger = Client()
    stranger.force_login(UserFactory())
    response = stranger.get(_url(raw))
    assert response.status_code == 403 and b'data-reason="wrong_recipient"' in response.content
    assert AuditEvent.objects.filter(action="share_link.refused", details__reason="wrong_recipient").exists()
    # the named recipient gets in
    recipient = Client()
    recipient.force_login(consultant)
    response = recipient.get(_url(raw))
    assert response.status_code == 302
    assert recipient.get(response["Location"]).status_code == 200


def test_invitation_grant_binds_to_the_accepting_user(case, owner):
    grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                             recipient_kind=RecipientKind.EMAIL, grantee_email="New.Doc@Example.org")
    newcomer = UserFactory(email="new.doc@example.org")
    assert not policy.can(newcomer, Action.VIEW_CASE, case)
    client = Client()
    client.force_login(newcomer)
    assert client.get(_url(raw)).status_code == 302
    grant.refresh_from_db()
    assert grant.grantee == newcomer
    assert policy.can(newcomer, Action.VIEW_IMAGES, case)


def test_mfa_template_refuses_a_recipient_without_mfa(case, owner, consultant):
    grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.CONSULTANT,
                                             recipient_kind=RecipientKind.USER, grantee=consultant)
    assert grant.mfa_required
    client = Client()
    client.force_login(consultant)
    response = client.get(_url(raw))
    assert response.status_code == 403 and b'data-reason="mfa_required"' in response.content
    assert not policy.can(consultant, Action.VIEW_CASE, case)
    consultant.is_verified = lambda: True  # as django-otp's middleware sets it after a TOTP check
    assert policy.can(consultant, Action.VIEW_CASE, case)


def test_an_anonymous_link_holders_reads_name_the_link_in_the_trail(case, owner, rf):
    """What a link holder does (viewer sessions, downloads counted on the grant) is recorded as
    done through that link: its public id in link_ref and in the label, never an internal row id
    and never as an unknown anonymous visitor."""
    from django.contrib.auth.models import AnonymousUser

    from tests.factories import StudyFactory

    study = StudyFactory(organization=case.organization, case=case)
    grant, link, raw = _anonymous(case, owner, renditions=["original", "preview"],
                                  **anonymous_original_terms(case.organization))
    holder = Client()
    assert open_anonymous_link(holder, raw, passcode=LINK_PASSCODE).status_code == 302
    assert holder.get(reverse("viewer:viewer", kwargs={"study_id": study.public_id})).status_code == 200
    opened = AuditEvent.objects.get(action="viewer.opened")
    assert opened.actor_type == "link" and opened.link_ref == link.public_id
    assert opened.actor_label == f"link:{link.public_id}"

    request = rf.get("/")
    request.user = AnonymousUser()
    actor = policy.LinkHolder(link_ids=(link.pk,))
    assert policy.download_authorize(actor=actor, obj=study, rendition="original", package_key="k",
                                     request=request) == grant
    counted = AuditEvent.objects.get(action="grant.download")
    assert counted.actor_type == "link" and counted.link_ref == link.public_id


def test_an_anonymous_link_holder_is_not_offered_the_studys_page_that_asks_them_to_sign_in(case, owner):
    """Each study's name on the shared case page linked to the study's own page, which sends an
    anonymous link holder to the sign-in form: only the viewer (View) is offered to them."""
    from tests.factories import StudyFactory

    study = StudyFactory(organization=case.organization, case=case, study_description="Chest CT")
    _grant, _link, raw = _anonymous(case, owner)
    visitor = Client()
    page = visitor.get(open_anonymous_link(visitor, raw)["Location"]).content.decode()
    study_page = reverse("imaging:study_detail", kwargs={"study_id": study.public_id})
    assert "Chest CT" in page and reverse("viewer:viewer", kwargs={"study_id": study.public_id}) in page
    assert f'href="{study_page}"' not in page
    assert visitor.get(study_page)["Location"].startswith("/accounts/login/")  # why it is not offered


def test_a_birth_date_is_asked_with_a_date_field_and_a_misformatted_one_uses_no_try(case, owner):
    """The birth date is asked with a date field (not a masked one); a day written another way
    (04/12/1961, 12.04.1961) is an error of the form that says how to write it, and uses none of
    the link's five tries; a wrong date does, and says how many are left in words that fit."""
    _grant, link, raw = _anonymous(case, owner, second_factor="birth_date")
    visitor = Client()
    page = visitor.get(_url(raw)).content.decode()
    assert 'type="date"' in page and 'type="password"' not in page
    born = case.patient.birth_date
    for written in (born.strftime("%d/%m/%Y"), born.strftime("%m/%d/%Y"), born.strftime("%d.%m.%Y"), "yesterday"):
        response = visitor.post(_url(raw), {"value": written})
        assert response.status_code == 400
        assert "1961-04-12" in response.content.decode()  # how to write it
    link.refresh_from_db()
    assert link.failed_attempts == 0
    for left in (4, 3, 2, 1):
        response = visitor.post(_url(raw), {"value": "1900-01-01"})
        assert response.status_code == 400
        expected = "1 try left" if left == 1 else f"{left} tries left"
        assert expected in response.content.decode()
    assert visitor.post(_url(raw), {"value": born.isoformat()}).status_code == 302


def test_a_passcode_is_still_asked_masked(case, owner):
    _grant, _link, raw = _anonymous(case, owner, second_factor="passcode", passcode="blue-kettle-42")
    page = Client().get(_url(raw)).content.decode()
    assert 'type="password"' in page and 'type="date"' not in page
