"""Downloading a diagnostic rendition (the original DICOM, or its lossless copy: the same pixels) on
a signed-in person's own access asks for a recent second factor, as sharing does (issue #2, found
by QA: a radiologist signed in with a password only downloaded the original zip at once). The
step-up (or, without an authenticator, the enrolment) page comes first, nothing is sent or counted,
and it comes back to the download. Previews ask for none; an anonymous link's visitor is not asked."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts import mfa
from apps.audit import actions as audit_actions
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import services as sharing
from apps.sharing.models import Grant, GrantDownload, SharingPolicy
from apps.sharing.usecases import RecipientKind, UseCase
from tests.accounts.conftest import enrol, pending_device, stale_second_factor_client, totp_code
from tests.factories import OrganizationFactory, member, open_anonymous_link, working_in

pytestmark = pytest.mark.django_db

STEP_UP = "/accounts/mfa/step-up/"


@pytest.fixture(autouse=True)
def _mfa_enforced(settings):
    """The sign-in gate and step-up are on, as in every real deployment."""
    settings.LIGHTBOX_MFA_ENFORCED = True


def _study_url(study, kind: str) -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _case_url(case, kind: str) -> str:
    return reverse("renditions:case_download", kwargs={"case_id": case.public_id}) + f"?rendition={kind}"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _sent_to_step_up(response, url: str) -> None:
    """A redirect to the step-up page, which comes back to ``url`` (a GET), and no file."""
    assert response.status_code == 302 and not response.streaming
    where = urlsplit(response["Location"])
    assert where.path == STEP_UP and parse_qs(where.query)["next"] == [url]


def _downloads_recorded() -> int:
    return AuditEvent.objects.filter(action__in=[audit_actions.DOWNLOAD_COMPLETED,
                                                 audit_actions.DOWNLOAD_INCOMPLETE]).count()


def _password_only(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _staff(study):
    return member(study.organization, Role.RADIOLOGIST, email="radiologist@alpha.example")


def test_password_only_staff_are_sent_to_set_up_a_second_factor_for_the_original(ct_study):
    """QA's case: a radiologist with no authenticator, signed in with a password."""
    radiologist = _staff(ct_study)
    client = _password_only(radiologist)
    working_in(client, ct_study.organization)
    urls = [_study_url(ct_study, "original"), _study_url(ct_study, "lossless"), _case_url(ct_study.case, "original")]
    for url in urls:
        _sent_to_step_up(client.get(url), url)
        _sent_to_step_up(client.head(url), url)  # nor its headers
    assert _downloads_recorded() == 0
    assert AuditEvent.objects.filter(action=audit_actions.AUTH_STEP_UP_REQUIRED, actor=radiologist).count() == 6
    # no authenticator: the step-up page sends them to set one up, saying why, and back to the download
    step_up = client.get(f"{STEP_UP}?next={urls[0]}")
    assert urlsplit(step_up["Location"]).path == reverse("accounts:mfa_setup")
    assert parse_qs(urlsplit(step_up["Location"]).query)["next"] == [urls[0]]
    setup = client.get(step_up["Location"])
    assert setup.status_code == 200 and "Downloading diagnostic images" in setup.content.decode()


def test_previews_ask_no_second_factor(ct_study):
    client = _password_only(_staff(ct_study))
    working_in(client, ct_study.organization)
    for url in (_study_url(ct_study, "preview"), _case_url(ct_study.case, "preview")):
        response = client.get(url)
        assert response.status_code == 200 and _body(response)[:2] == b"PK"
    assert _downloads_recorded() == 2
    assert not AuditEvent.objects.filter(action=audit_actions.AUTH_STEP_UP_REQUIRED).exists()


@pytest.mark.parametrize("scope", ["study", "case"])
def test_after_a_fresh_code_the_original_downloads(ct_study, scope):
    radiologist = _staff(ct_study)
    client, device = stale_second_factor_client(radiologist)  # a code passed longer ago than the window
    working_in(client, ct_study.organization)
    url = _study_url(ct_study, "original") if scope == "study" else _case_url(ct_study.case, "original")
    _sent_to_step_up(client.get(url), url)
    assert _downloads_recorded() == 0
    step_up = client.get(f"{STEP_UP}?next={url}")
    assert step_up.status_code == 200 and "Downloading diagnostic images" in step_up.content.decode()
    back = client.post(STEP_UP, {"code": totp_code(device, ahead=1), "next": url})
    # a page offering the download (a GET) and the way back: redirected to the file, the browser
    # saved it and stayed on the code's page, as if nothing had happened. Reached by a redirect,
    # so that reloading it sends no code again (a reviewer: a reload counted a wrong code)
    assert back.status_code == 302 and back["Location"].startswith(reverse("accounts:continue_download"))
    for _reload in range(2):
        offer = client.get(back["Location"])
        page = offer.content.decode()
        assert offer.status_code == 200 and f'href="{url}" data-testid="continue-download"' in page
        assert f'href="{url.split("?")[0].removesuffix("download/")}" data-testid="continue-back"' in page
    assert device.__class__.objects.get(pk=device.pk).throttling_failure_count == 0
    response = client.get(url)
    assert response.status_code == 200 and _body(response)[:2] == b"PK"
    assert _downloads_recorded() == 1


def _outside_recipient(study, *, download_limit: int):
    """A clinician of another organization (no second factor asked of their role) with a share of
    ``study``'s case that gives the original."""
    other = OrganizationFactory(name="Gamma Clinic", slug="gamma")
    recipient = member(other, Role.CLINICIAN, email="recipient@gamma.example")
    owner = member(study.organization, Role.RADIOLOGIST, email="owner@alpha.example")
    grant = sharing.grant_create(case=study.case, grantee=recipient, by=owner,
                                 permissions=["view", "download_preview", "download_original"],
                                 renditions=["original", "preview"], download_limit=download_limit,
                                 expires_at=timezone.now() + timedelta(hours=2))
    return recipient, grant


def test_a_recipients_original_is_not_counted_before_the_second_factor(ct_study):
    recipient, grant = _outside_recipient(ct_study, download_limit=2)
    client = _password_only(recipient)
    for url in (_study_url(ct_study, "original"), _case_url(ct_study.case, "original")):
        _sent_to_step_up(client.get(url), url)
    grant.refresh_from_db()
    assert grant.download_count == 0 and not GrantDownload.objects.exists() and _downloads_recorded() == 0
    # the preview their share gives goes out at once (and is counted)
    assert client.get(_study_url(ct_study, "preview")).status_code == 200
    grant.refresh_from_db()
    assert grant.download_count == 1


def test_a_refusal_comes_before_the_step_up(ct_study):
    """Who may not download the original is told so, not first sent to pass a second factor."""
    recipient, grant = _outside_recipient(ct_study, download_limit=2)
    Grant.objects.filter(pk=grant.pk).update(permissions=["view", "download_preview"], renditions=["preview"])
    client = _password_only(recipient)
    assert client.get(_study_url(ct_study, "original")).status_code == 403
    assert not AuditEvent.objects.filter(action=audit_actions.AUTH_STEP_UP_REQUIRED).exists()


def test_a_resume_within_the_window_goes_on_and_after_it_asks_again(ct_study):
    """A Range request continuing a counted transfer asks as any request does: within the step-up
    window it goes on (counted once); after it, a fresh code first, nothing sent meanwhile, and the
    transfer then goes on, still counted once."""
    recipient, grant = _outside_recipient(ct_study, download_limit=1)
    device = enrol(recipient)
    client = _password_only(recipient)
    assert client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"}).status_code == 302
    url = _study_url(ct_study, "original")
    head = client.head(url)
    total, etag = int(head["Content-Length"]), head["ETag"]
    first = client.get(url, headers={"Range": f"bytes=0-{total // 3 - 1}"})
    assert first.status_code == 206
    first = _body(first)
    second = client.get(url, headers={"Range": f"bytes={len(first)}-{2 * (total // 3) - 1}", "If-Range": etag})
    assert second.status_code == 206  # within the window
    second = _body(second)
    session = client.session
    session[mfa.OTP_VERIFIED_AT] = time.time() - (settings.LIGHTBOX_STEP_UP_HOURS + 0.1) * 3600
    session.save()
    rest_range = {"Range": f"bytes={len(first) + len(second)}-", "If-Range": etag}
    _sent_to_step_up(client.get(url, headers=rest_range), url)
    offer = client.get(client.post(STEP_UP, {"code": totp_code(device, ahead=1), "next": url})["Location"])
    assert 'data-testid="continue-download"' in offer.content.decode()
    rest = client.get(url, headers=rest_range)
    assert rest.status_code == 206
    assert len(first + second + _body(rest)) == total
    grant.refresh_from_db()
    assert grant.download_count == 1


def test_staff_who_opened_an_anonymous_link_are_still_asked(ct_study):
    """An anonymous link opened in the session does not stand in for the person's own second
    factor: the original their role gives is still asked for."""
    org = ct_study.organization
    org.anonymous_links_enabled = True
    org.save()
    radiologist = _staff(ct_study)
    _grant, _link, raw = sharing.share_create(case=ct_study.case, by=radiologist, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS)
    client = _password_only(radiologist)
    working_in(client, org)
    assert open_anonymous_link(client, raw).status_code == 302
    url = _study_url(ct_study, "original")
    _sent_to_step_up(client.get(url), url)
    assert _downloads_recorded() == 0


def test_an_anonymous_link_visitor_is_not_asked(ct_study):
    """A link's visitor has no account to step up: their download is as before (the link's own
    passcode, which an anonymous link with the original must have, was asked when it was opened)."""
    org = ct_study.organization
    org.anonymous_links_enabled = True
    org.save()
    SharingPolicy.objects.update_or_create(organization=org, defaults={"anonymous_allow_original": True})
    owner = _staff(ct_study)
    grant, _link, raw = sharing.share_create(case=ct_study.case, by=owner, use_case=UseCase.CUSTOM,
                                             recipient_kind=RecipientKind.ANONYMOUS, download_limit=3,
                                             second_factor="passcode", passcode="blue-kettle-42")
    Grant.objects.filter(pk=grant.pk).update(permissions=["view", "download_preview", "download_original"],
                                             renditions=["original", "preview"])
    visitor = Client()
    assert visitor.post(reverse("sharing:link_open", kwargs={"token": raw}),
                        {"value": "blue-kettle-42"}).status_code == 302
    response = visitor.get(_study_url(ct_study, "original"))
    assert response.status_code == 200 and _body(response)[:2] == b"PK"


def _button(page: str, kind: str) -> str:
    start = page.index(f'data-testid="download-{kind}"')
    return page[page.rindex("<a ", 0, start):page.index(">", start)]


def test_the_study_pages_diagnostic_buttons_lead_to_the_step_up(ct_study):
    """The page's diagnostic download buttons are plain links while a second factor is asked (a
    ``download`` link would save the step-up page as the file), and the page says so."""
    radiologist = _staff(ct_study)
    client = _password_only(radiologist)
    working_in(client, ct_study.organization)
    page = client.get(reverse("imaging:study_detail", kwargs={"study_id": ct_study.public_id})).content.decode()
    for kind in ("original", "lossless"):
        assert " download " not in _button(page, kind) and _study_url(ct_study, kind) in _button(page, kind)
    assert " download " in _button(page, "preview")
    said = page[page.index('data-testid="download-second-factor"'):]
    # what it says comes next is what comes: a page offering the download with its button, which
    # starts nothing by itself (found by QA: "then the download starts", and nothing started)
    assert said[:said.index("</p>")].endswith("you first set one up (an authenticator app on your phone), then the "
                                              "next page offers the download, with its button.")
    # a second factor passed just now: the page's buttons download at once, and it says nothing
    device = enrol(radiologist)
    client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/"})
    page = client.get(reverse("imaging:study_detail", kwargs={"study_id": ct_study.public_id})).content.decode()
    assert " download " in _button(page, "original") and 'data-testid="download-second-factor"' not in page


def test_a_signed_in_person_downloading_on_an_anonymous_link_alone_is_not_asked(ct_study):
    """What only an opened anonymous link gives (no role, no share of theirs) is the link's
    download, as for any of its visitors: the link asks for its own second factor when its share
    does, not for the account's."""
    org = ct_study.organization
    org.anonymous_links_enabled = True
    org.save()
    SharingPolicy.objects.update_or_create(organization=org, defaults={"anonymous_allow_original": True})
    grant, _link, raw = sharing.share_create(case=ct_study.case, by=_staff(ct_study), use_case=UseCase.CUSTOM,
                                             recipient_kind=RecipientKind.ANONYMOUS, download_limit=3,
                                             second_factor="passcode", passcode="blue-kettle-42")
    Grant.objects.filter(pk=grant.pk).update(permissions=["view", "download_preview", "download_original"],
                                             renditions=["original", "preview"])
    elsewhere = member(OrganizationFactory(name="Gamma Clinic", slug="gamma"), Role.CLINICIAN,
                       email="someone@gamma.example")
    client = _password_only(elsewhere)
    assert client.post(reverse("sharing:link_open", kwargs={"token": raw}),
                       {"value": "blue-kettle-42"}).status_code == 302
    response = client.get(_study_url(ct_study, "original"))
    assert response.status_code == 200 and _body(response)[:2] == b"PK"


def test_only_the_downloads_are_offered_on_a_page_of_their_own(ct_study):
    """The step-up and the end of an enrolment go on to a download through a page offering it
    (``mfa.is_download``: the views marked so), to any other page by a redirect."""
    from apps.accounts import mfa

    assert mfa.is_download(_study_url(ct_study, "original")) and mfa.is_download(_case_url(ct_study.case, "original"))
    assert not mfa.is_download(ct_study.get_absolute_url()) and not mfa.is_download("/no/such/page/")
    # the offer's page takes downloads only: any other target (or one off the site) is redirected to
    client = _password_only(_staff(ct_study))
    page = reverse("accounts:continue_download")
    assert client.get(f"{page}?next={ct_study.get_absolute_url()}")["Location"] == ct_study.get_absolute_url()
    assert client.get(f"{page}?next=//elsewhere.example/x")["Location"] == "/"


@pytest.mark.parametrize(("scope", "kind", "label"), [
    ("study", "original", "Download the original DICOM"),
    ("study", "lossless", "Download the lossless copy"),
    ("case", "original", "Download the case&#x27;s original DICOM (all its studies)"),
    ("case", "lossless", "Download the case&#x27;s lossless copy (all its studies)"),
])
def test_after_the_second_factor_the_button_says_what_it_downloads(ct_study, scope, kind, label):
    """QA's case: a radiologist with no second factor taps Download on Original, sets one up and
    saves the recovery codes; the page they land on said "Download" alone. Its button names the
    download it starts (its view and rendition), and nothing starts before it is pressed."""
    radiologist = _staff(ct_study)
    client = _password_only(radiologist)
    working_in(client, ct_study.organization)
    url = _study_url(ct_study, kind) if scope == "study" else _case_url(ct_study.case, kind)
    _sent_to_step_up(client.get(url), url)
    setup = client.get(client.get(f"{STEP_UP}?next={url}")["Location"])
    device = pending_device(client)
    codes = client.post(reverse("accounts:mfa_setup"), {"code": totp_code(device), "next": url})
    assert urlsplit(codes["Location"]).path == reverse("accounts:recovery_codes") and setup.status_code == 200
    saved = client.post(reverse("accounts:recovery_codes"), {"saved": "1", "next": url})
    assert saved.status_code == 302 and saved["Location"].startswith(reverse("accounts:continue_download"))
    page = client.get(saved["Location"]).content.decode()
    button = page[page.rindex("<a ", 0, page.index('data-testid="continue-download"')):]
    assert button.startswith(f'<a class="button primary" href="{url}"')
    assert button[button.index(">") + 1:button.index("</a>")] == label
    assert _downloads_recorded() == 0


def test_a_download_its_view_names_nothing_of_is_offered_as_download(ct_study):
    from apps.accounts import mfa

    assert mfa.download_label(_study_url(ct_study, "preview")) == ""
    assert mfa.download_label(ct_study.get_absolute_url()) == "" and mfa.download_label("/no/such/page/") == ""
