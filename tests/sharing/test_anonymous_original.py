"""An anonymous link never carries the identified original DICOM unless the organization's sharing
policy allows it (``SharingPolicy.anonymous_allow_original``, off by default), and then only with a
passcode or the patient's birth-date check on the link (review 21: a Custom share to an anonymous
link with the original and no second factor let whoever was forwarded the URL download full-header
DICOM). One rule (``policy.anonymous_original_refusal``), asked by the service, the share form, the
API, extension and renewal; the download's side is tests/renditions/test_anonymous_original_download.py."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.sharing import policy, services
from apps.sharing.models import Grant, ShareLink, SharingPolicy
from apps.sharing.usecases import TEMPLATES, RecipientKind, UseCase
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db

PASSCODE = "blue-kettle-42"


def _allow(organization, allowed: bool = True) -> None:
    SharingPolicy.objects.update_or_create(organization=organization,
                                           defaults={"anonymous_allow_original": allowed})


def _share(case, owner, **kwargs):
    return services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                 recipient_kind=RecipientKind.ANONYMOUS, renditions=["original"], **kwargs)


def test_the_setting_is_off_by_default(anonymous_on):
    assert services.sharing_policy_for(anonymous_on.pk).anonymous_allow_original is False


def test_an_anonymous_link_with_the_original_is_refused_by_default(case, owner, anonymous_on):
    """Review 21's share: refused, nothing made, whatever second factor it names."""
    for second_factor in ({}, {"second_factor": "passcode", "passcode": PASSCODE}):
        with pytest.raises(ValidationError) as refused:
            _share(case, owner, **second_factor)
        assert refused.value.code == "renditions"
        assert "does not allow the original DICOM on anonymous links" in refused.value.messages[0]
    assert not Grant.objects.exists() and not ShareLink.objects.exists()


def test_allowed_by_the_policy_it_still_needs_a_second_factor(case, owner, anonymous_on):
    _allow(anonymous_on)
    with pytest.raises(ValidationError) as refused:
        _share(case, owner)
    assert refused.value.code == "second_factor"
    assert not Grant.objects.exists()


def test_allowed_by_the_policy_with_a_passcode_or_birth_date(case, owner, anonymous_on):
    _allow(anonymous_on)
    grant, link, _raw = _share(case, owner, second_factor="passcode", passcode=PASSCODE)
    assert link.anonymous and link.second_factor == "passcode"
    assert "download_original" in grant.permissions and grant.renditions == ["original"]
    case.patient.birth_date = date(1961, 4, 12)
    case.patient.save()
    grant, link, _raw = _share(case, owner, second_factor="birth_date")
    assert link.second_factor == "birth_date" and "download_original" in grant.permissions


def test_previews_on_an_anonymous_link_are_as_before(case, owner, anonymous_on):
    grant, link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS, renditions=["preview"])
    assert grant.renditions == ["preview"] and "download_original" not in grant.permissions
    assert link.second_factor == ""


def test_the_rule(anonymous_on):
    refusal = policy.anonymous_original_refusal
    assert refusal(allowed=False, second_factor="passcode") == policy.AnonymousOriginalRefusal.NOT_ALLOWED
    assert refusal(allowed=True, second_factor="") == policy.AnonymousOriginalRefusal.NO_SECOND_FACTOR
    assert refusal(allowed=True, second_factor="passcode") is None
    assert refusal(allowed=True, second_factor="birth_date") is None


# --- the API --------------------------------------------------------------------------------------

def _api_create(client, case, **body):
    return client.post("/api/v1/grants/", json.dumps({"case": str(case.public_id), "use_case": "custom",
                                                       "recipient_kind": "anonymous", "renditions": ["original"],
                                                       **body}), content_type="application/json")


def test_the_api_refuses_it_beside_the_field(case, owner, anonymous_on):
    client = Client()
    client.force_login(owner)
    response = _api_create(client, case)
    assert response.status_code == 400
    assert "does not allow the original DICOM on anonymous links" in response.json()["renditions"][0]
    _allow(anonymous_on)
    response = _api_create(client, case)
    assert response.status_code == 400 and "passcode" in response.json()["second_factor"][0]
    assert not Grant.objects.exists()
    response = _api_create(client, case, second_factor="passcode", passcode=PASSCODE)
    assert response.status_code == 201
    assert Grant.objects.get().renditions == ["original"]


# --- the share page -------------------------------------------------------------------------------

def _share_url(case) -> str:
    return reverse("sharing:case_share", kwargs={"case_id": case.public_id})


def _form(**changes) -> dict:
    return {"use_case": "custom", "recipient_kind": "anonymous", "rendition": "original", **changes}


def test_the_share_page_says_it_is_not_offered(case, owner, anonymous_on):
    client = Client()
    client.force_login(owner)
    page = client.get(_share_url(case)).content.decode()
    assert "Not offered for anonymous links: the original DICOM (this organization&#x27;s sharing policy" in page
    _allow(anonymous_on)
    page = client.get(_share_url(case)).content.decode()
    assert "Not offered for anonymous links" not in page
    assert "Anonymous links: the original DICOM only with a passcode or the patient&#x27;s birth-date check." in page


def test_the_share_page_refuses_it_at_the_review_and_on_confirming(case, owner, anonymous_on):
    client = Client()
    client.force_login(owner)
    review = client.post(_share_url(case), _form())
    assert review.status_code == 400 and b'name="confirm"' not in review.content
    assert "does not allow the original DICOM on anonymous links" in review.content.decode()
    # a confirmation sent without the review (an old page) is refused as well
    response = client.post(_share_url(case), {**_form(), **confirmation(client)})
    assert response.status_code == 400
    assert not Grant.objects.exists()
    _allow(anonymous_on)
    response = client.post(_share_url(case), {**_form(), **confirmation(client)})
    assert response.status_code == 400 and "needs a passcode" in response.content.decode()
    assert not Grant.objects.exists()


def test_the_share_page_makes_it_where_allowed_with_a_passcode(case, owner, anonymous_on):
    _allow(anonymous_on)
    client = Client()
    client.force_login(owner)
    form = _form(second_factor="passcode", passcode=PASSCODE)
    review = client.post(_share_url(case), form)
    assert review.status_code == 200 and b'name="confirm"' in review.content
    token = re.search(r'name="confirm_token" value="([^"]+)"', review.content.decode()).group(1)
    assert client.post(_share_url(case), {**form, "confirm": "1", "confirm_token": token}).status_code == 200
    grant = Grant.objects.get()
    assert "download_original" in grant.permissions and grant.links.get().second_factor == "passcode"


# --- the sharing settings -------------------------------------------------------------------------

def _settings_form(**changes) -> dict:
    form = {"anonymous_max_hours": 24, "anonymous_download_limit": 3, "original_approval_max_hours": 48}
    for key, template in TEMPLATES.items():
        form[f"{key}__default_hours"], form[f"{key}__max_hours"] = template.default_hours, template.max_hours
    return {**form, **changes}


def test_an_admin_turns_it_on_and_off_and_it_is_recorded(admin_a, client_as, anonymous_on):
    client = client_as(admin_a)
    page = client.get(reverse("sharing:policy")).content.decode()
    assert 'name="anonymous_allow_original"' in page and "checked" not in page.split(
        'name="anonymous_allow_original"')[1].split(">")[0]
    assert client.post(reverse("sharing:policy"), _settings_form(anonymous_allow_original="on")).status_code == 302
    assert services.sharing_policy_for(anonymous_on.pk).anonymous_allow_original is True
    event = AuditEvent.objects.filter(action="sharing_policy.updated").latest("pk")
    assert event.details["anonymous_allow_original"] is True
    assert client.post(reverse("sharing:policy"), _settings_form()).status_code == 302
    assert services.sharing_policy_for(anonymous_on.pk).anonymous_allow_original is False
    assert AuditEvent.objects.filter(action="sharing_policy.updated").latest("pk").details[
        "anonymous_allow_original"] is False


def test_who_may_not_edit_the_settings_may_not_turn_it_on(owner, client_as, anonymous_on):
    response = client_as(owner).post(reverse("sharing:policy"), _settings_form(anonymous_allow_original="on"))
    assert response.status_code in (403, 404)
    assert services.sharing_policy_for(anonymous_on.pk).anonymous_allow_original is False


# --- extending and renewing -----------------------------------------------------------------------

def test_a_link_no_longer_allowed_is_neither_extended_nor_renewed(case, owner, anonymous_on):
    _allow(anonymous_on)
    grant, _link, _raw = _share(case, owner, second_factor="passcode", passcode=PASSCODE, hours=4)
    assert services.grant_extend_refusal(grant=grant) is None
    assert services.grant_renew_refusal(grant=grant) is None
    _allow(anonymous_on, False)
    grant = Grant.objects.get(pk=grant.pk)
    assert services.grant_extend_refusal(grant=grant) == services.ExtendRefusal.ANONYMOUS_ORIGINAL
    assert services.grant_renew_refusal(grant=grant) == services.RenewRefusal.ANONYMOUS_ORIGINAL
    with pytest.raises(ValidationError) as refused:
        services.grant_extend(grant=grant, by=owner, expires_at=grant.expires_at + timedelta(hours=1),
                              reason="The board moved to tomorrow")
    assert "cannot be extended or renewed" in refused.value.messages[0]
    with pytest.raises(ValidationError) as refused:
        services.grant_renew(grant=grant, by=owner)
    assert "cannot be extended or renewed" in refused.value.messages[0]
    grant.refresh_from_db()
    assert grant.revoked_at is None and Grant.objects.count() == 1
    assert grant.expires_at <= timezone.now() + timedelta(hours=4)
