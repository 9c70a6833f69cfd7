"""What opening an anonymous share link puts in a browser session ends (found by review):

- after the idle limit of the link's organization (its consultants-and-patients limit): the
  holder's frames stop, they open the link again and pass its passcode again; the ending is
  recorded (``auth.idle_timeout``, named by the link);
- when someone signs in on that browser: the person signing in does not inherit the visitor's
  links (a shared workstation);
- the viewer's audit label comes from what allowed the reading: a signed-in person's reading of
  their own study is theirs, not a link holder's, even with a link opened in the same session.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing import services as sharing
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import LINK_PASSCODE, TEST_PASSWORD, anonymous_original_terms, member, open_anonymous_link
from tests.viewer.conftest import make_ct_study

pytestmark = pytest.mark.django_db


def _frame_url(study) -> str:
    return reverse("viewer:frame", kwargs={"instance_id": study.phantom_instances[0].public_id})


def _viewer_url(study) -> str:
    return reverse("viewer:viewer", kwargs={"study_id": study.public_id})


def _anonymous_link(study, sharer, *, passcode: bool = False):
    org = study.organization
    org.anonymous_links_enabled = True
    org.save()
    terms = anonymous_original_terms(org) if passcode else {}
    _grant, link, raw = sharing.share_create(case=study.case, by=sharer, use_case=UseCase.CUSTOM,
                                             recipient_kind=RecipientKind.ANONYMOUS, **terms)
    return link, raw


def _later(monkeypatch, seconds: int) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


@pytest.mark.parametrize("passcode", [False, True])
def test_a_link_holder_idle_past_the_organizations_limit_opens_the_link_again(monkeypatch, clinician_a, ct_study,
                                                                              passcode):
    ct_study.organization.external_idle_minutes = 20
    ct_study.organization.save()
    link, raw = _anonymous_link(ct_study, clinician_a, passcode=passcode)
    holder = Client()
    assert open_anonymous_link(holder, raw, passcode=LINK_PASSCODE if passcode else None).status_code == 302
    assert holder.get(_frame_url(ct_study)).status_code == 200
    _later(monkeypatch, 19 * 60)  # within the limit: still theirs
    assert holder.get(_frame_url(ct_study)).status_code == 200
    _later(monkeypatch, 19 * 60 + 21 * 60)  # 21 minutes without activity since
    idle = holder.get(_frame_url(ct_study))
    assert idle.status_code == 404 and not idle.get("Content-Type", "").startswith("image/")
    assert policy.LINK_SESSION_KEY not in holder.session
    event = AuditEvent.objects.get(action="auth.idle_timeout")
    assert event.actor_type == "link" and event.link_ref == link.public_id
    assert event.organization_id == ct_study.organization_id
    assert event.details == {"limit_seconds": 20 * 60, "via": "link"}
    # the shared case's page is no longer theirs either; the next page says why
    page = holder.get(reverse("sharing:shared_case", kwargs={"case_id": ct_study.case.public_id}), follow=True)
    assert "Open the link again" in page.content.decode()
    # opened again: with its passcode again when it asks one
    if passcode:
        asked = open_anonymous_link(holder, raw)
        assert asked.status_code == 200 and 'name="value"' in asked.content.decode()
    assert open_anonymous_link(holder, raw, passcode=LINK_PASSCODE if passcode else None).status_code == 302
    assert holder.get(_frame_url(ct_study)).status_code == 200


def test_the_limit_is_the_default_when_the_organization_sets_none(monkeypatch, settings, clinician_a, ct_study):
    ct_study.organization.external_idle_minutes = 0
    ct_study.organization.save()
    settings.LIGHTBOX_IDLE_MINUTES_DEFAULT = 30
    _link, raw = _anonymous_link(ct_study, clinician_a)
    holder = Client()
    assert open_anonymous_link(holder, raw).status_code == 302
    assert holder.get(_frame_url(ct_study)).status_code == 200
    _later(monkeypatch, 29 * 60)
    assert holder.get(_frame_url(ct_study)).status_code == 200
    _later(monkeypatch, 29 * 60 + 31 * 60)
    assert holder.get(_frame_url(ct_study)).status_code == 404


def test_signing_in_after_a_visitor_opened_a_link_does_not_give_its_study(org_a, org_b, clinician_a, ct_study):
    _link, raw = _anonymous_link(ct_study, clinician_a)
    browser = Client()
    assert open_anonymous_link(browser, raw).status_code == 302
    assert browser.get(_viewer_url(ct_study)).status_code == 200  # the visitor's viewer session
    rad_b = member(org_b, Role.RADIOLOGIST, email="rad@beta.example")
    own = make_ct_study(org_b, rad_b)
    signed = browser.post(reverse("account_login"), {"login": "rad@beta.example", "password": TEST_PASSWORD})
    assert signed.status_code == 302
    assert browser.get(_viewer_url(ct_study)).status_code == 404
    assert browser.get(_frame_url(ct_study)).status_code == 404
    session = browser.session
    for key in (policy.LINK_SESSION_KEY, sharing.LINK_SECOND_FACTOR_SESSION_KEY, sharing.OPENED_SESSION_KEY,
                sharing.LINK_LAST_SEEN_SESSION_KEY):
        assert key not in session, key
    assert not session.get("lightbox_viewer_sessions")
    assert browser.get(_viewer_url(own)).status_code == 200
    own_event = AuditEvent.objects.get(action="viewer.opened", study_ref=own.public_id)
    assert own_event.actor_type == "user" and own_event.actor_id == rad_b.pk
    assert own_event.actor_label == "rad@beta.example"


def test_a_signed_in_readers_own_study_is_theirs_in_the_trail_a_links_study_the_links(client_as, org_a, org_b,
                                                                                     clinician_a, ct_study):
    """Someone signed in who then opens an anonymous link of another organization's case (both in
    the same browser session): each reading is named by what allowed it."""
    link, raw = _anonymous_link(ct_study, clinician_a)
    rad_b = member(org_b, Role.RADIOLOGIST, email="rad@beta.example")
    own = make_ct_study(org_b, rad_b)
    browser = client_as(rad_b)
    assert open_anonymous_link(browser, raw).status_code == 302
    assert browser.get(_viewer_url(own)).status_code == 200
    assert browser.get(_viewer_url(ct_study)).status_code == 200
    own_event = AuditEvent.objects.get(action="viewer.opened", study_ref=own.public_id)
    assert (own_event.actor_type, own_event.actor_label, own_event.link_ref) == ("user", "rad@beta.example", None)
    linked = AuditEvent.objects.get(action="viewer.opened", study_ref=ct_study.public_id)
    assert (linked.actor_type, linked.actor_label, linked.link_ref) == ("link", f"link:{link.public_id}",
                                                                        link.public_id)
