"""Sharing from a case in a few steps through the pages: template, recipient, scope, expiry,
confirm; then the link is shown once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from apps.sharing.models import Grant
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db


def test_share_steps_then_link_shown_once(owner, case, consultant):
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    page = client.get(url)
    assert page.status_code == 200 and b"Radiology second opinion" in page.content
    form = {"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": consultant.email}
    review = client.post(url, form)
    assert review.status_code == 200 and b'name="confirm"' in review.content
    assert not Grant.objects.exists()  # nothing until confirmed
    token = re.search(r'name="confirm_token" value="([^"]+)"', review.content.decode()).group(1)
    done = client.post(url, {**form, "confirm": "1", "confirm_token": token})
    assert done.status_code == 200
    link = re.search(rb'value="(http://testserver/s/[^"]+)"', done.content).group(1).decode()
    grant = Grant.objects.get()
    assert grant.grantee == consultant and grant.use_case == "second_opinion" and grant.created_by == owner
    recipient = Client()
    recipient.force_login(consultant)
    assert recipient.get(link.removeprefix("http://testserver")).status_code == 302


def test_share_form_refuses_unknown_recipient_and_wrong_kind(owner, case):
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    response = client.post(url, {"use_case": "second_opinion", "recipient_kind": "user",
                                 "recipient_email": "nobody@example.org"})
    assert response.status_code == 400
    response = client.post(url, {"use_case": "second_opinion", "recipient_kind": "anonymous",
                                 **confirmation(client)})
    assert response.status_code == 400
    assert not Grant.objects.exists()


def test_an_organization_with_anonymous_links_off_is_not_offered_them(owner, case):
    # the form offered "Anonymous link" and refused it with "This template shares with: ...":
    # it is not offered, and one asked for anyway is refused for what it is
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    assert not case.organization.anonymous_links_enabled
    assert 'value="anonymous"' not in client.get(url).content.decode()
    response = client.post(url, {"use_case": "custom", "recipient_kind": "anonymous", **confirmation(client)})
    assert response.status_code == 400
    assert "Anonymous links are switched off for this organization." in response.content.decode()
    assert not Grant.objects.exists()
    case.organization.anonymous_links_enabled = True
    case.organization.save(update_fields=["anonymous_links_enabled"])
    assert 'value="anonymous"' in client.get(url).content.decode()


def test_only_sharers_reach_the_share_page(case, consultant, org_b, client_as):
    from apps.organizations.models import Role
    from tests.factories import member

    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    assert client_as(consultant).get(url).status_code == 404       # cannot see the case at all
    coordinator = member(case.organization, Role.COORDINATOR)
    assert client_as(coordinator).get(url).status_code == 403      # sees it, may not share
    assert client_as(member(org_b, Role.CLINICIAN)).get(url).status_code == 404


def test_sharing_needs_a_recent_second_factor_when_mfa_is_enforced(owner, case, consultant, settings):
    settings.LIGHTBOX_MFA_ENFORCED = True
    client = Client()
    client.force_login(owner)
    response = client.get(reverse("sharing:case_share", kwargs={"case_id": case.public_id}))
    assert response.status_code == 302 and reverse("accounts:step_up") in response["Location"]
    body = {"case": str(case.public_id), "use_case": "second_opinion", "recipient_kind": "user",
            "recipient_email": consultant.email}
    response = client.post("/api/v1/grants/", body, content_type="application/json")
    assert response.status_code == 403 and "step_up_required" in response.content.decode()
    assert not Grant.objects.exists()


def test_share_one_study_then_only_that_study_is_reachable(owner, case, consultant):
    from apps.sharing import policy
    from apps.sharing.policy import Action
    from tests.factories import CaseFactory, GrantFactory, StudyFactory

    shared, other = StudyFactory(organization=case.organization, case=case), \
        StudyFactory(organization=case.organization, case=case)
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:study_share", kwargs={"study_id": shared.public_id})
    page = client.get(url)
    assert page.status_code == 200 and b'name="studies"' in page.content
    form = {"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": consultant.email,
            "studies": [shared.pk]}
    review = client.post(url, form)
    assert review.status_code == 200, review.content
    assert client.post(url, {**form, **confirmation(client)}).status_code == 200
    grant = Grant.objects.get()
    assert list(grant.studies.all()) == [shared]
    assert policy.can(consultant, Action.VIEW_IMAGES, shared)
    assert policy.can(consultant, Action.DOWNLOAD_ORIGINAL, shared)
    assert not policy.can(consultant, Action.VIEW_IMAGES, other)
    assert not policy.can(consultant, Action.DOWNLOAD_PREVIEW, other)
    assert policy.can(consultant, Action.VIEW_CASE, case)
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case)  # never a whole-case download
    from apps.imaging.models import Study

    assert list(Study.objects.filter(id__in=policy.granted_study_ids(consultant))) == [shared]
    whole = StudyFactory(organization=case.organization, case=CaseFactory(organization=case.organization))
    GrantFactory(organization=case.organization, case=whole.case, grantee=consultant)
    assert set(Study.objects.filter(id__in=policy.granted_study_ids(consultant))) == {shared, whole}
    recipient = Client()
    recipient.force_login(consultant)
    page = recipient.get(reverse("sharing:shared_case", kwargs={"case_id": case.public_id})).content.decode()
    assert str(shared.public_id) in page and str(other.public_id) not in page


def test_org_admin_narrows_template_defaults_and_maxima(admin_a, owner, case, consultant, client_as):
    from apps.sharing import services
    from apps.sharing.models import SharingPolicy
    from apps.sharing.usecases import template_for

    url = reverse("sharing:policy")
    assert client_as(owner).get(url).status_code == 403
    page = client_as(admin_a).get(url)
    assert page.status_code == 200
    form = {"anonymous_max_hours": 12, "anonymous_download_limit": 2, "original_approval_max_hours": 24}
    for key in ("second_opinion", "telehealth", "tumor_board", "consultant", "patient_education", "custom"):
        template = template_for(case.organization_id, key)
        form[f"{key}__default_hours"], form[f"{key}__max_hours"] = template.default_hours, template.max_hours
    # never above the built-in maximum
    assert client_as(admin_a).post(url, {**form, "second_opinion__max_hours": 96}).status_code == 400
    form["second_opinion__default_hours"], form["second_opinion__max_hours"] = 24, 36
    assert client_as(admin_a).post(url, form).status_code == 302
    assert SharingPolicy.objects.get(organization=case.organization).anonymous_max_hours == 12
    template = template_for(case.organization_id, "second_opinion")
    assert (template.default_hours, template.max_hours) == (24, 36)
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case="second_opinion",
                                               recipient_kind="user", grantee=consultant)
    assert abs((grant.expires_at - grant.starts_at).total_seconds() - 24 * 3600) < 5


def test_case_and_study_pages_offer_sharing_to_sharers_only(owner, case, consultant, client_as):
    from tests.factories import GrantFactory, StudyFactory

    study = StudyFactory(organization=case.organization, case=case)
    case_url = reverse("cases:case_detail", kwargs={"case_id": case.public_id})
    study_url = reverse("imaging:study_detail", kwargs={"study_id": study.public_id})
    assert b'data-testid="share-case"' in client_as(owner).get(case_url).content
    assert b'data-testid="share-study"' in client_as(owner).get(study_url).content
    GrantFactory(organization=case.organization, case=case, grantee=consultant, permissions=["view"])
    assert b'data-testid="share-case"' not in client_as(consultant).get(case_url).content
    assert b'data-testid="share-study"' not in client_as(consultant).get(study_url).content


def test_a_shared_case_without_images_says_so(owner, case, consultant):
    from tests.factories import GrantFactory, StudyFactory

    GrantFactory(organization=case.organization, case=case, grantee=consultant)
    recipient = Client()
    recipient.force_login(consultant)
    url = reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    page = recipient.get(url).content.decode()
    assert 'data-testid="no-studies"' in page and 'data-testid="open-viewer"' not in page
    StudyFactory(organization=case.organization, case=case)
    page = recipient.get(url).content.decode()
    assert 'data-testid="no-studies"' not in page and 'data-testid="open-viewer"' in page


def test_review_step_refuses_an_expiry_past_the_template_maximum_beside_the_field(owner, case, consultant):
    """Review is where a too-long expiry is refused, beside the hours field: not a confirm page
    promising 500 hours and then a refusal at the top of the form after confirming."""
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    form = {"use_case": "consultant", "recipient_kind": "user", "recipient_email": consultant.email,
            "hours": 500}
    review = client.post(url, form)
    assert review.status_code == 400
    assert b'name="confirm"' not in review.content
    assert "hours" in review.context["form"].errors
    assert not Grant.objects.exists()


def test_review_step_shows_what_confirming_creates(owner, case, consultant, client_as):
    """The organization's narrowed default expiry, and the download-original permission that
    choosing originals adds, are what the review shows and what the grant gets."""
    from apps.sharing import services

    policy_ = services.sharing_policy_for(case.organization_id)
    policy_.template_settings = {"consultant": {"default_hours": 12, "max_hours": 48}}
    policy_.save()
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    page = client.get(url).content.decode()
    assert "12 h" in page and "48 h" in page  # the templates table shows the organization's figures
    form = {"use_case": "consultant", "recipient_kind": "user", "recipient_email": consultant.email,
            "rendition": "original"}
    review = client.post(url, form)
    assert review.status_code == 200
    text = review.content.decode()
    assert "12 hours" in text and "Download original" in text and "Original DICOM" in text
    assert client.post(url, {**form, **confirmation(client)}).status_code == 200
    grant = Grant.objects.get()
    assert abs((grant.expires_at - grant.starts_at).total_seconds() - 12 * 3600) < 5
    assert "download_original" in grant.permissions


def test_my_shares_offers_renew_only_where_renewing_can_succeed(owner, case, consultant, client_as):
    """Renew is offered for renewable templates on open cases only: a second opinion (not
    renewable) or a share on a closed case would only answer with an error."""
    from tests.factories import CaseFactory, GrantFactory

    renewable = GrantFactory(organization=case.organization, case=case, grantee=consultant,
                             created_by=owner, use_case="consultant")
    fixed = GrantFactory(organization=case.organization, case=case, grantee=consultant,
                         created_by=owner, use_case="second_opinion")
    closed_case = CaseFactory(organization=case.organization, status="closed")
    on_closed = GrantFactory(organization=case.organization, case=closed_case, grantee=consultant,
                             created_by=owner, use_case="consultant")
    page = client_as(owner).get(reverse("sharing:my_shares")).content.decode()

    def renew_offered(grant):
        return reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}) in page

    assert renew_offered(renewable)
    assert not renew_offered(fixed)
    assert not renew_offered(on_closed)


def test_share_done_shows_the_expiry_year_month_day(owner, case, consultant):
    """The page that shows a new link gave its expiry in Django's long form ('Jan. 4, 2027, 8:40
    p.m.'); every other page reads year-month-day with a 24-hour clock."""
    from django.utils import timezone

    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    form = {"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": consultant.email,
            **confirmation(client)}
    done = client.post(url, form).content.decode()
    shown = timezone.localtime(Grant.objects.get().expires_at).strftime("%Y-%m-%d %H:%M")
    assert f">{shown}</time>" in done


def test_review_step_goes_back_to_the_filled_form_to_change_it(owner, case, consultant):
    """The review offers Change: the form comes back with what was entered, and nothing is created."""
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    form = {"use_case": "consultant", "recipient_kind": "user", "recipient_email": consultant.email, "hours": "30"}
    review = client.post(url, form).content.decode()
    assert 'name="edit"' in review
    back = client.post(url, {**form, "confirm": "1", "edit": "1"})
    assert back.status_code == 200 and not Grant.objects.exists()
    page = back.content.decode()
    assert "Confirm and share" not in page and 'data-testid="confirm-share"' not in page
    assert f'value="{consultant.email}"' in page and 'value="30"' in page


def test_renewing_and_extending_on_my_shares_need_a_recent_second_factor(owner, case, consultant, settings):
    """As sharing and the API do: renewing hands out a new share and its link, extending keeps
    someone's access longer. A stale second factor goes to the step-up page, which returns to My
    shares for Renew (a button: a GET of its URL would be refused); nothing changes meanwhile."""


    from tests.accounts.conftest import stale_second_factor_client, totp_code
    from tests.factories import GrantFactory

    settings.LIGHTBOX_MFA_ENFORCED = True
    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner,
                         use_case="consultant", permissions=["view"], renditions=["preview"])
    expires = grant.expires_at
    client, device = stale_second_factor_client(owner)
    renew = reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id})
    extend = reverse("sharing:grant_extend", kwargs={"grant_id": grant.public_id})
    refused = client.post(renew)
    assert refused.status_code == 302 and refused["Location"].startswith(reverse("accounts:step_up"))
    assert "next=" + reverse("sharing:my_shares") in refused["Location"].replace("%2F", "/")
    assert client.get(extend)["Location"].startswith(reverse("accounts:step_up"))
    later = (expires + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.post(extend, {"expires_at": later, "reason": "board moved"}).status_code == 302
    assert Grant.objects.count() == 1
    grant.refresh_from_db()
    assert grant.expires_at == expires and grant.revoked_at is None
    # with a fresh code, Renew works
    client.post(reverse("accounts:step_up"), {"code": totp_code(device, ahead=1), "next": reverse("sharing:my_shares")})
    assert client.post(renew).status_code == 200
    assert Grant.objects.count() == 2
