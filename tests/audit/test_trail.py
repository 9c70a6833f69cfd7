"""Must show 1: each audited action, driven once through its real entry point (an HTTP request or
the feature's service), leaves exactly the expected events, in order, and the chains verify.

The table is the contract between features and the trail. A feature that starts recording an
action adds its row to ``ROWS`` (and removes the name from ``NOT_YET_DRIVEN``);
``test_every_action_is_driven_or_listed`` fails until it does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Role
from tests.factories import TEST_PASSWORD, CaseFactory, GrantFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

ORG, GLOBAL = "org", "global"
ALLOWED, DENIED, FAILED = "allowed", "denied", "failed"


@dataclass
class Row:
    name: str
    drive: Callable[[Any], Any]
    expect: list[tuple[str, str, str]] | Callable[[Any], list[tuple[str, str, str]]]  # (action, outcome, chain)
    setup: Callable[[Any], Any] = field(default=lambda w: None)

    def expected(self, w) -> list[tuple[str, str, str]]:
        """Computed before the drive (a callable sees the state the action will act on)."""
        return self.expect(w) if callable(self.expect) else self.expect


# --- drivers: each calls the feature's real entry point ------------------------------------

def _sign_in(w):
    response = Client().post(reverse("account_login"), {"login": w.clinician.email, "password": TEST_PASSWORD})
    assert response.status_code == 302


def _sign_in_unknown(w):
    response = Client().post(reverse("account_login"), {"login": "nobody@nowhere.example", "password": "wrong"})
    assert response.status_code in (200, 400)


def _sign_out(w):
    w.clients["leaving"].post(reverse("account_logout"))


def _sign_in_failed(w):
    response = Client().post(reverse("account_login"), {"login": w.clinician.email, "password": "wrong"})
    assert response.status_code in (200, 400)


def _member_add(w):
    from apps.organizations.services import membership_add

    membership_add(organization=w.org, by=w.admin, email="newcomer@alpha.example", role=Role.CLINICIAN)


def _role_change(w):
    from apps.organizations.services import membership_update

    membership_update(membership=w.coordinator.memberships.get(), by=w.admin, role=Role.CLINICIAN, is_active=True)


def _group_member_leaves(w):
    """A consultant in a group share is deactivated: taken out of it (the share stays)."""
    from apps.organizations.services import membership_update

    grant = GrantFactory(organization=w.org, case=w.case, grantee=None, group_name="Board", created_by=w.clinician)
    grant.group_members.set([w.consultant, w.clinician])
    membership_update(membership=w.consultant.memberships.get(organization=w.org), by=w.admin,
                      role=Role.EXTERNAL_CONSULTANT, is_active=False)


def _policy_change(w):
    from apps.organizations.services import organization_update_policy

    organization_update_policy(organization=w.org, by=w.admin,
                               values={"invitation_ttl_hours": w.org.invitation_ttl_hours + 1})


def _patient_create(w):
    from apps.cases.services import patient_get_or_create

    patient_get_or_create(organization=w.org, by=w.clinician, mrn="TRAIL-1", name="Generated Person")


def _mrn_renamed_setup(w):
    """A patient a migration renamed (cases 0004, 0005): one MRN with w.patient's."""
    renamed = PatientFactory(organization=w.org, mrn="placeholder")
    renamed.mrn = f"{w.patient.mrn.lower()} (duplicate {renamed.pk})"
    renamed.save(update_fields=["mrn"])


def _mrn_renamed_record(w):
    import io

    from django.core.management import call_command

    call_command("mrn_duplicates", "--record", stdout=io.StringIO())


def _case_create(w):
    from apps.cases.services import case_create

    case_create(organization=w.org, by=w.clinician, patient=w.patient, title="Trail case")


def _case_view(w):
    assert w.clients["clinician"].get(w.case.get_absolute_url()).status_code == 200


def _case_view_denied(w):
    assert w.clients["outsider"].get(w.case.get_absolute_url()).status_code == 404


def _case_edit(w):
    from apps.cases.services import case_update

    case_update(case=w.case, by=w.clinician, values={"title": "Renamed"})


def _patient_update(w):
    """The case page's "Correct patient details" form (a birth date, never shown in the trail)."""
    born = "1961-03-14" if str(w.case.patient.birth_date) != "1961-03-14" else "1961-03-15"  # a change
    response = w.clients["clinician"].post(reverse("cases:patient_edit", kwargs={"case_id": w.case.public_id}),
                                           {"name": w.case.patient.name, "birth_date": born})
    assert response.status_code == 302


def _case_close(w):
    from apps.cases.services import case_close

    case_close(case=w.case, by=w.clinician)


def _case_reopen(w):
    from apps.cases.services import case_reopen

    case_reopen(case=w.case, by=w.clinician)


def _note_add(w):
    from apps.cases.services import note_add

    note_add(case=w.case, by=w.clinician, body="Compared with prior.")


def _share(w):
    from apps.sharing.services import share_create

    share_create(case=w.case, by=w.clinician, use_case="consultant", recipient_kind="user", grantee=w.consultant)


def _make_grant(w):
    w.grant = GrantFactory(organization=w.org, case=w.case, grantee=w.consultant, use_case="consultant",
                           permissions=["view", "download_preview"], created_by=w.clinician)


def _share_extend(w):
    from apps.sharing.services import grant_extend

    grant_extend(grant=w.grant, by=w.clinician, expires_at=w.grant.expires_at + timedelta(hours=1),
                 reason="tumor board moved to Friday")


def _share_renew(w):
    from apps.sharing.services import grant_renew

    grant_renew(grant=w.grant, by=w.clinician)


def _share_revoke(w):
    from apps.sharing.services import grants_revoke

    grants_revoke(grants=[w.grant], by=w.clinician, reason="done")


def _original_request(w):
    from apps.sharing.services import original_request_create

    original_request_create(grant=w.grant, by=w.consultant, reason="need the originals")


def _make_request(w):
    from apps.sharing.models import OriginalRequest

    _make_grant(w)
    # an earlier row's request for the case may still wait: one request a person and case waits
    # (the database's one_pending_original_request), so it is closed first, as a new one closes it
    OriginalRequest.objects.filter(case=w.case, requested_by=w.consultant, status="pending").update(
        status="withdrawn")
    w.request = OriginalRequest.objects.create(organization=w.org, case=w.case, grant=w.grant,
                                               requested_by=w.consultant, reason="need the originals")


def _original_decide(approve):
    def drive(w):
        from apps.sharing.services import original_request_decide

        original_request_decide(original_request=w.request, by=w.radiologist, approve=approve)
    return drive


def _attachment_add(w):
    import io

    from apps.cases.services import attachment_add

    w.attachment = attachment_add(case=w.case, by=w.clinician, fileobj=io.BytesIO(b"%PDF-1.4\n%%EOF\n"),
                                  filename="report.pdf")


def _attachment_download(w):
    from apps.cases.services import attachment_open

    attachment_open(attachment=w.attachment, by=w.clinician).close()


def _board_create(w):
    from apps.cases.services import board_create

    w.board = board_create(organization=w.org, by=w.clinician, host=w.clinician, title="Thoracic board",
                           meeting_at=timezone.now() + timedelta(days=1), review_days=7, cases=[w.case],
                           participants=[w.clinician, w.radiologist])


def _board_start(w):
    from apps.cases.services import board_start

    board_start(board=w.board, by=w.clinician)


def _board_end(w):
    from apps.cases.services import board_end

    board_end(board=w.board, by=w.clinician)


def _board_started(w):
    _board_create(w)
    _board_start(w)


def _board_window_run_out(w):
    """A started board whose review window (and so its grants) ran out an hour ago, unended."""
    from apps.cases.models import BoardSession
    from apps.sharing.models import Grant

    _board_started(w)
    shift = w.board.review_window + timedelta(hours=1)
    BoardSession.objects.filter(pk=w.board.pk).update(started_at=w.board.started_at - shift)
    for grant in w.board.grants.all():
        Grant.objects.filter(pk=grant.pk).update(starts_at=grant.starts_at - shift, expires_at=grant.expires_at - shift)


def _board_window_sweep(w):
    from apps.sharing.tasks import share_expiries_record_task

    assert w.board.grants.count() == 1  # the radiologist's, on the case (the host is given none)
    assert share_expiries_record_task() == 2
    assert share_expiries_record_task() == 0  # recorded once


def _link_make(w):
    from apps.sharing.services import share_create

    _grant, w.link, _raw = share_create(case=w.case, by=w.clinician, use_case="consultant", recipient_kind="user",
                                        grantee=w.consultant)


def _link_revoke(w):
    from apps.sharing.services import share_link_revoke

    share_link_revoke(link=w.link, by=w.clinician)


def _ingest(w):
    from apps.imaging.services import ingest_job_create, ingest_job_run

    job = ingest_job_create(organization=w.org, source_path=str(w.ct_folder), case=w.case, created_by=w.clinician,
                            enqueue=False)
    ingest_job_run(job_id=job.pk)


def _study_delete(w):
    from apps.imaging.models import Study
    from apps.imaging.services import study_delete

    study_delete(study=Study.objects.get(case=w.case), by=w.radiologist)  # DELETE_STUDY: not clinicians


def _loose_study(w):
    """A study uploaded with "No case (attach later)" (its ingest is a row of its own), and a case
    of its own to go into (the other rows find w.case's one study)."""
    from apps.imaging.models import Study

    # the case patient's images (another patient's would ask for a box to tick: tests/imaging/test_attach.py)
    w.loose = Study.objects.create(organization=w.org, study_instance_uid="1.2.826.0.1.3680043.10.9.1",
                                   patient_id=w.patient.mrn)
    w.loose_case = CaseFactory(organization=w.org, patient=w.patient, created_by=w.clinician)


def _study_attach(w):
    response = w.clients["clinician"].post(reverse("imaging:study_attach", kwargs={"study_id": w.loose.public_id}),
                                           {"case": str(w.loose_case.public_id)})
    assert response.status_code == 302


# --- accounts: second factor, invitations, single sign-on -------------------------------------

def _totp(device, ahead: int = 0) -> str:
    from tests.accounts.conftest import totp_code

    return totp_code(device, ahead=ahead)


def _fresh_member(w, role=Role.RADIOLOGIST):
    """A new member of A for rows that change a person's sign-in state (second factor, locks),
    so that every row also runs after the others in one trail."""
    w.n = getattr(w, "n", 0) + 1
    return member(w.org, role, email=f"person{w.n}@alpha.example")


def _mfa_client(w):
    """A member of A, signed in, with an authenticator and saved recovery codes."""
    from tests.accounts.conftest import enrol

    w.mfa_user = _fresh_member(w)
    w.device = enrol(w.mfa_user)
    w.mfa_client = Client()
    w.mfa_client.force_login(w.mfa_user)


def _wrong_code(w) -> str:
    return "123456" if _totp(w.device) != "123456" else "654321"


def _mfa_enrol_start(w):
    w.mfa_user = _fresh_member(w)
    w.mfa_client = Client()
    w.mfa_client.force_login(w.mfa_user)
    assert w.mfa_client.get(reverse("accounts:mfa_setup")).status_code == 200


def _mfa_enrol(w):
    from tests.accounts.conftest import pending_device

    device = pending_device(w.mfa_client)
    response = w.mfa_client.post(reverse("accounts:mfa_setup"), {"code": _totp(device)})
    assert response.status_code == 302, response.content[:300]


def _recovery_codes_save(w):
    assert w.mfa_client.post(reverse("accounts:recovery_codes"), {"saved": "1", "next": "/"}).status_code == 302


def _enrolled_unsaved(w):
    _mfa_enrol_start(w)
    _mfa_enrol(w)


def _otp_verify(w):
    assert w.mfa_client.post(reverse("accounts:mfa_verify"), {"code": _totp(w.device), "next": "/"}).status_code == 302


def _otp_wrong(w):
    assert w.mfa_client.post(reverse("accounts:mfa_verify"), {"code": _wrong_code(w)}).status_code in (400, 429)


def _otp_almost_locked(w):
    from django.conf import settings

    _mfa_client(w)
    for _ in range(settings.LIGHTBOX_OTP_MAX_FAILURES - 1):
        _otp_wrong(w)


def _otp_locked(w):
    _otp_almost_locked(w)
    _otp_wrong(w)


def _recovery_code_use(w):
    from django_otp.plugins.otp_static.models import StaticDevice

    code = StaticDevice.objects.get(user=w.mfa_user).token_set.first().token
    assert w.mfa_client.post(reverse("accounts:mfa_verify"), {"code": code, "next": "/"}).status_code == 302


def _recovery_codes_renew(w):
    assert w.mfa_client.post(reverse("accounts:recovery_codes_renew")).status_code == 302


def _step_up_needed(w):
    import time

    from apps.accounts import mfa

    w.settings.LIGHTBOX_MFA_ENFORCED = True  # pytest-django's settings: restored after the test
    _mfa_client(w)
    _otp_verify(w)
    session = w.mfa_client.session
    session[mfa.OTP_VERIFIED_AT] = time.time() - (w.settings.LIGHTBOX_STEP_UP_HOURS + 1) * 3600
    session.save()


def _step_up(w):
    response = w.mfa_client.get(reverse("accounts:invitation_send"))
    w.settings.LIGHTBOX_MFA_ENFORCED = False  # as the test settings have it, for the rows after this one
    assert response.status_code == 302 and "step-up" in response["Location"]


def _mfa_reset(w):
    from apps.accounts.services import mfa_reset

    mfa_reset(user=w.mfa_user, by=w.admin)


def _idle(w):
    import time

    from apps.accounts.middleware import LAST_SEEN

    w.idle_client = client = Client()
    client.force_login(_fresh_member(w, Role.EXTERNAL_CONSULTANT))
    client.get(reverse("accounts:mfa_verify"))
    session = client.session
    session[LAST_SEEN] = time.time() - 24 * 3600
    session.save()


def _idle_timeout(w):
    response = w.idle_client.get(reverse("sharing:shared_with_me"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def _sso_org(w):
    from apps.accounts.models import SSOConfig

    SSOConfig.objects.update_or_create(organization=w.org, defaults={
        "issuer": "https://idp.example", "client_id": "x", "allowed_domains": "alpha.example", "enabled": True})
    w.org.password_login_allowed = False
    w.org.save()


def _password_refused(w):
    response = Client().post(reverse("account_login"), {"login": w.clinician.email, "password": TEST_PASSWORD})
    assert response.status_code == 200


def _sso_login(w, email: str):
    """What allauth hands the adapter after the provider's callback (the adapter is the entry
    point that decides; the OIDC round trip itself is tested in tests/accounts/test_sso.py)."""
    from allauth.core.exceptions import ImmediateHttpResponse
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from apps.accounts.adapters import SocialAccountAdapter

    request = RequestFactory().get("/accounts/oidc/org-alpha/login/callback/")
    request.session = SessionStore()
    user = type(w.clinician).objects.filter(email=email).first()
    login = SimpleNamespace(provider=SimpleNamespace(app=SimpleNamespace(provider_id=f"org-{w.org.slug}")),
                            email_addresses=[SimpleNamespace(email=email, verified=True)], is_existing=True,
                            user=user)
    try:
        SocialAccountAdapter().pre_social_login(request, login)
    except ImmediateHttpResponse:
        return False
    return True


def _sso_linked(w):
    assert _sso_login(w, w.clinician.email)


def _sso_refused(w):
    assert not _sso_login(w, "someone@elsewhere.example")


def _sso_member_elsewhere(w):
    """A fresh staff member of A who is also a member of the other organization: A's provider
    does not sign them in (apps.sharing.policy.sso_sign_in_allowed)."""
    _sso_org(w)
    w.in_both = _fresh_member(w, Role.CLINICIAN)
    Membership.objects.create(user=w.in_both, organization=w.other_org, role=Role.CLINICIAN)


def _sso_refused_elsewhere(w):
    assert not _sso_login(w, w.in_both.email)


def _sso_session_then_elsewhere(w):
    """A fresh staff member of A in a session A's single sign-on opened (the sign-in itself:
    tests/accounts/test_sso.py), who has since become a member of the other organization too."""
    from apps.accounts import sso

    _sso_org(w)
    w.sso_user = _fresh_member(w, Role.CLINICIAN)
    w.sso_client = Client()
    w.sso_client.force_login(w.sso_user)
    session = w.sso_client.session
    session[sso.OPENED_BY_KEY] = w.org.pk
    session[sso.FACTORS_BEFORE_KEY] = []
    session.save()
    Membership.objects.create(user=w.sso_user, organization=w.other_org, role=Role.CLINICIAN)


def _sso_session_ended(w):
    response = w.sso_client.get(reverse("sharing:shared_with_me"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def _sso_change(w):
    assert w.clients["admin"].post(reverse("accounts:sso_settings"), {
        "enabled": "on", "issuer": "https://idp.alpha.example", "client_id": "lightbox",
        "client_secret": "a-long-client-secret-0123456789", "allowed_domains": "alpha.example"}).status_code == 302


def _locked_almost(w):
    from django.conf import settings

    w.locked_user = _fresh_member(w)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        Client().post(reverse("account_login"), {"login": w.locked_user.email, "password": "wrong"})


def _locked_out(w):
    response = Client().post(reverse("account_login"), {"login": w.locked_user.email, "password": "wrong"})
    assert response.status_code == 429


def _invite(w):
    from apps.accounts.services import invitation_create

    w.n = getattr(w, "n", 0) + 1
    w.invitation, w.invitation_raw = invitation_create(organization=w.org, by=w.admin, role=Role.RADIOLOGIST,
                                                       email=f"new.doc{w.n}@alpha.example")


def _invite_revoke(w):
    from apps.accounts.services import invitation_revoke

    assert invitation_revoke(invitation=w.invitation, by=w.admin)


def _invite_resend(w):
    from apps.accounts.models import Invitation
    from apps.accounts.services import invitation_resend

    # its first e-mail a while ago: a second one within a minute is refused
    Invitation.objects.filter(pk=w.invitation.pk).update(sent_at=timezone.now() - timedelta(minutes=5))
    w.invitation_raw = invitation_resend(invitation=w.invitation, by=w.admin)


def _invite_accept_new_account(w):
    client = Client()
    url = reverse("accounts:invitation_accept", kwargs={"token": w.invitation_raw})
    response = client.post(url, {"step": "account", "full_name": "Generated Doctor",
                                 "password1": "a-long-passphrase-41", "password2": "a-long-passphrase-41"})
    assert response.status_code == 302, response.content[:400]


def _invite_existing(w):
    from apps.accounts.services import invitation_create

    other = member(w.other_org, Role.CLINICIAN, email="guest@alpha.example")
    w.invitation, w.invitation_raw = invitation_create(organization=w.org, by=w.admin, email=other.email,
                                                       role=Role.EXTERNAL_CONSULTANT)
    w.guest = Client()
    w.guest.force_login(other)


def _invite_accept_signed_in(w):
    url = reverse("accounts:invitation_accept", kwargs={"token": w.invitation_raw})
    assert w.guest.post(url, {"step": "accept"}).status_code == 302


def _invite_unknown(w):
    url = reverse("accounts:invitation_accept", kwargs={"token": "not-a-token-" + "x" * 30})
    assert w.clients["anonymous"].get(url).status_code in (404, 429)


def _invite_unknown_almost_locked(w):
    from django.conf import settings
    from django.core.cache import cache

    cache.delete("lightbox:invite-fail:127.0.0.1")  # the count so far (a row before may have added one)
    for _ in range(settings.LIGHTBOX_INVITE_TOKEN_MAX_FAILURES - 1):
        _invite_unknown(w)


def _invite_patient(w):
    import datetime

    from apps.accounts.services import invitation_create

    w.patient.birth_date = datetime.date(1970, 1, 2)
    w.patient.save()
    w.invitation, w.invitation_raw = invitation_create(organization=w.org, by=w.clinician, email="pat@example.org",
                                                       role=Role.PATIENT, patient=w.patient, case=w.case)


def _invite_unknown_locked(w):
    from django.core.cache import cache

    _invite_unknown(w)
    cache.delete("lightbox:invite-fail:127.0.0.1")  # the lock ends (for the rows after this one)


def _birth_date_wrong(w):
    url = reverse("accounts:invitation_accept", kwargs={"token": w.invitation_raw})
    assert Client().post(url, {"step": "birth_date", "birth_date": "1980-05-06"}).status_code == 400


# --- organizations and sharing settings ----------------------------------------------------

def _sharing_policy_update(w):
    from apps.sharing.services import sharing_policy_update

    sharing_policy_update(organization_id=w.org.pk, by=w.admin, template_settings={},
                          values={"anonymous_max_hours": 24, "anonymous_download_limit": 3,
                                  "original_approval_max_hours": 48})


def _board_edit(w):
    from apps.cases.services import board_update

    board_update(board=w.board, by=w.clinician, host=w.clinician, title="Thoracic board (moved)",
                 meeting_at=timezone.now() + timedelta(days=2), review_days=7, cases=[w.case],
                 participants=[w.clinician, w.radiologist])


# --- uploads, viewer, downloads ------------------------------------------------------------

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
UPLOADS = "/api/v1/uploads/"


def _upload_create(w):
    response = w.clients["clinician"].post(UPLOADS, HTTP_UPLOAD_LENGTH=str(len(w.dicom_bytes)), **TUS)
    assert response.status_code == 201, response.content
    w.upload_url = response["Location"].split("testserver", 1)[-1]


def _upload_finish(w):
    response = w.clients["clinician"].generic("PATCH", w.upload_url, w.dicom_bytes,
                                              content_type="application/offset+octet-stream",
                                              HTTP_UPLOAD_OFFSET="0", **TUS)
    assert response.status_code == 204, response.content


def _upload_status_read(w):
    """The upload page polls its upload's status (its per-file report): recorded once."""
    for _ in range(3):
        assert w.clients["clinician"].get(w.upload_url).status_code == 200


def _upload_report_view(w):
    from apps.imaging.models import IngestJob

    job = IngestJob.objects.get(upload__public_id=w.upload_url.rstrip("/").rsplit("/", 1)[-1])
    response = w.clients["clinician"].get(reverse("imaging:upload_report", kwargs={"ingestjob_id": job.public_id}))
    assert response.status_code == 200


def _upload_received(w):
    _upload_create(w)
    _upload_finish(w)


def _upload_cancel(w):
    assert w.clients["clinician"].delete(w.upload_url, **TUS).status_code == 204


def _keys_rotate(w):
    import io

    from django.core.management import call_command

    call_command("rotate_keys", stdout=io.StringIO())


def _organization_create(w):
    import io

    from django.core.management import call_command

    call_command("organization_create", slug="onboarded", name="Onboarded Hospital",
                 admin_email="first-admin@onboarded.example", stdout=io.StringIO())


def _upload_expire(w):
    from apps.imaging.models import Upload
    from apps.imaging.tasks import uploads_expire_task

    Upload.objects.filter(pk=Upload.objects.order_by("-pk").values("pk")[:1]) \
        .update(expires_at=timezone.now() - timedelta(hours=1))
    assert uploads_expire_task() == 1


def _upload_failed_long_ago(w):
    """An upload received whole whose ingest job failed, longer ago than its file is kept."""
    from apps.imaging.models import IngestJob
    from apps.imaging.services import ingest_job_fail

    _upload_create(w)
    _upload_finish(w)
    job = IngestJob.objects.get(upload__public_id=w.upload_url.rstrip("/").rsplit("/", 1)[-1])
    ingest_job_fail(job_id=job.pk, error="StorageUnavailable")
    IngestJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=15))


def _failed_upload_discard(w):
    from apps.imaging.tasks import failed_uploads_discard_task

    assert failed_uploads_discard_task() == 1


def _study(w):
    from apps.imaging.models import Study
    from apps.renditions.services import study_renditions_make

    if getattr(w, "study", None) is not None and Study.objects.filter(pk=w.study.pk).exists():
        return  # one study serves every row (in the all-rows trail too)
    _ingest(w)
    w.study = Study.objects.get(case=w.case)
    study_renditions_make(study_id=w.study.pk)


def _study_page(w):
    assert w.clients["clinician"].get(reverse("imaging:study_detail", kwargs={"study_id": w.study.public_id})
                                      ).status_code == 200


def _study_page_denied(w):
    assert w.clients["outsider"].get(reverse("imaging:study_detail", kwargs={"study_id": w.study.public_id})
                                     ).status_code == 404


def _viewer_url(w) -> str:
    return reverse("viewer:viewer", kwargs={"study_id": w.study.public_id})


def _viewer_open(w):
    assert w.clients["clinician"].get(_viewer_url(w)).status_code == 200
    w.viewer_session = AuditEvent.objects.filter(action=A.VIEWER_OPENED).latest("id").details["session"]


def _study_and_viewer(w):
    _study(w)
    _viewer_open(w)


def _altered_original(w):
    """The viewer open on the study, one of whose originals' stored bytes were then altered."""
    from apps.imaging.models import Instance
    from tests.factories import blob_alter

    _study_and_viewer(w)
    w.altered = Instance.objects.filter(study=w.study).select_related("blob").order_by("pk").first()
    blob_alter(w.altered.blob)


def _altered_original_frame(w):
    url = reverse("viewer:frame", kwargs={"instance_id": w.altered.public_id}) + "?quality=diagnostic"
    response = w.clients["clinician"].get(url, headers={"X-Lightbox-Viewer-Session": w.viewer_session})
    assert response.status_code == 200 and response["X-Lightbox-Frame"] == "integrity"


def _viewer_close(w):
    url = reverse("viewer:close", kwargs={"study_id": w.study.public_id})
    assert w.clients["clinician"].post(url, {"session": w.viewer_session, "frames": "3"}).status_code == 204


def _viewer_timeout(w):
    from apps.viewer.models import ViewerSession
    from apps.viewer.tasks import viewer_sessions_close_idle_task

    ViewerSession.objects.filter(key=w.viewer_session).update(last_seen_at=timezone.now() - timedelta(days=1))
    assert viewer_sessions_close_idle_task() == 1


def _download_url(w, rendition="original") -> str:
    return reverse("renditions:study_download", kwargs={"study_id": w.study.public_id}) + f"?rendition={rendition}"


def _download_complete(w):
    response = w.clients["clinician"].get(_download_url(w))
    assert response.status_code == 200
    b"".join(response.streaming_content)


def _download_part(w):
    response = w.clients["clinician"].get(_download_url(w), HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206
    assert len(b"".join(response.streaming_content)) == 100


def _study_shared(w):
    _study(w)
    _make_grant(w)


def _download_on_grant(w):
    response = w.clients["consultant"].get(_download_url(w, "preview"))
    assert response.status_code == 200, response.status_code
    b"".join(response.streaming_content)


def _study_shared_with_a_patient(w):
    from apps.sharing import services
    from apps.sharing.usecases import RecipientKind, UseCase
    from tests.patient_links import link_patient_account

    _study(w)
    w.patient_user = member(w.org, Role.PATIENT, email="patient@alpha.example")
    link_patient_account(w.patient_user, w.case.patient, case=w.case)  # the case's patient's account
    services.share_create(case=w.case, by=w.clinician, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=w.patient_user)
    w.clients["patient"] = Client()
    w.clients["patient"].force_login(w.patient_user)  # signed in before the row runs


def _education_viewed(w):
    page = w.clients["patient"].get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-image"' in page


# --- links and expiry ----------------------------------------------------------------------

def _anonymous_links_off(w):
    w.org.anonymous_links_enabled = False
    w.org.save()


def _share_refused(w):
    from django.core.exceptions import PermissionDenied

    from apps.sharing.services import share_create

    with pytest.raises(PermissionDenied):
        share_create(case=w.case, by=w.clinician, use_case="custom", recipient_kind="anonymous")


def _email_share(w):
    from apps.sharing.services import share_create

    w.grant, w.link, w.raw = share_create(case=w.case, by=w.clinician, use_case="second_opinion",
                                          recipient_kind="email", grantee_email="consultant@alpha.example")


def _link_url(w) -> str:
    return reverse("sharing:link_open", kwargs={"token": w.raw})


def _link_accept(w):
    assert w.clients["consultant"].get(_link_url(w)).status_code == 302


def _user_share(w):
    from apps.sharing.services import share_create

    w.grant, w.link, w.raw = share_create(case=w.case, by=w.clinician, use_case="second_opinion",
                                          recipient_kind="user", grantee=w.consultant)


def _link_open(w):
    assert w.clients["consultant"].get(_link_url(w)).status_code == 302


def _link_wrong_recipient(w):
    assert w.clients["outsider"].get(_link_url(w)).status_code == 403


def _passcode_share(w):
    from apps.sharing.services import share_create

    w.org.anonymous_links_enabled = True
    w.org.save()
    w.grant, w.link, w.raw = share_create(case=w.case, by=w.clinician, use_case="custom",
                                          recipient_kind="anonymous", second_factor="passcode",
                                          passcode="blue-kettle-42")


def _passcode_wrong(w):
    assert w.clients["anonymous"].post(_link_url(w), {"value": "wrong-guess"}).status_code == 400


def _share_expire(w):
    from apps.sharing.models import Grant
    from apps.sharing.tasks import share_expiries_record_task

    Grant.objects.filter(pk=w.grant.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert share_expiries_record_task() == 1
    assert share_expiries_record_task() == 0  # recorded once


def _audit_export(w):
    response = w.clients["admin"].post(reverse("audit:export_csv"))
    assert response.status_code == 200


def _case_close_events(w) -> list[tuple[str, str, str]]:
    """What closing the case records: each grant it revokes (in the order grants_revoke takes
    them), each followed by the requests for the original withdrawn with it, then the close."""
    from apps.sharing.models import Grant

    events = []
    for grant in Grant.objects.filter(case=w.case, revoked_at__isnull=True):
        events.append((A.GRANT_REVOKED, ALLOWED, ORG))
        events += [(A.ORIGINAL_REQUEST_WITHDRAWN, ALLOWED, ORG)] * grant.original_requests.filter(
            status="pending").count()
    return [*events, (A.CASE_CLOSED, ALLOWED, ORG)]


def _deid_export(w):
    from apps.deid.services import deid_export_run, deid_export_start

    export = deid_export_start(study=w.study, by=w.clinician, pseudonym="TRAIL-X7", enqueue=False)
    assert deid_export_run(export_id=export.pk).state == "ready"  # what the queued task runs


def _deid_export_fail(w):
    from apps.deid.services import deid_export_fail, deid_export_start

    export = deid_export_start(study=w.study, by=w.clinician, pseudonym="TRAIL-F9", enqueue=False)
    deid_export_fail(export_id=export.pk, error=OSError("/var/storage/blobs/ab"))  # the task gave up


ROWS = [
    # account events go into the chain of each organization the person belongs to (here: A)
    Row("sign-in", _sign_in, [(A.AUTH_SIGNED_IN, ALLOWED, ORG)]),
    Row("sign-out", _sign_out, [(A.AUTH_SIGNED_OUT, ALLOWED, ORG)]),
    Row("failed sign-in", _sign_in_failed, [(A.AUTH_SIGN_IN_FAILED, DENIED, ORG)]),
    Row("failed sign-in, unknown account", _sign_in_unknown, [(A.AUTH_SIGN_IN_FAILED, DENIED, GLOBAL)]),
    Row("member added", _member_add, [(A.MEMBERSHIP_ADDED, ALLOWED, ORG)]),
    Row("role change", _role_change, [(A.MEMBERSHIP_UPDATED, ALLOWED, ORG)]),
    Row("member left a group share", _group_member_leaves,
        [(A.MEMBERSHIP_UPDATED, ALLOWED, ORG), (A.GRANT_MEMBER_REMOVED, ALLOWED, ORG)]),
    Row("policy change", _policy_change, [(A.ORGANIZATION_POLICY_CHANGED, ALLOWED, ORG)]),
    Row("patient created", _patient_create, [(A.PATIENT_CREATED, ALLOWED, ORG)]),
    Row("MRN rename recorded", _mrn_renamed_record, [(A.PATIENT_MRN_RENAMED, ALLOWED, ORG)],
        setup=_mrn_renamed_setup),
    Row("case created", _case_create, [(A.CASE_CREATED, ALLOWED, ORG)]),
    Row("case page view", _case_view, [(A.CASE_VIEWED, ALLOWED, ORG)]),
    Row("denial by the policy", _case_view_denied, [(A.ACCESS_DENIED, DENIED, ORG)]),
    Row("case edited", _case_edit, [(A.CASE_EDITED, ALLOWED, ORG)]),
    Row("patient details corrected", _patient_update, [(A.PATIENT_UPDATED, ALLOWED, ORG)]),
    Row("note added", _note_add, [(A.NOTE_ADDED, ALLOWED, ORG)]),
    Row("share created", _share, [(A.GRANT_CREATED, ALLOWED, ORG), (A.SHARE_LINK_CREATED, ALLOWED, ORG)]),
    Row("share extended", _share_extend, [(A.GRANT_EXTENDED, ALLOWED, ORG)], setup=_make_grant),
    Row("share renewed", _share_renew, [(A.GRANT_CREATED, ALLOWED, ORG), (A.GRANT_REVOKED, ALLOWED, ORG),
                                        (A.SHARE_LINK_CREATED, ALLOWED, ORG)], setup=_make_grant),
    Row("share revoked", _share_revoke, [(A.GRANT_REVOKED, ALLOWED, ORG)], setup=_make_grant),
    Row("original requested", _original_request, [(A.ORIGINAL_REQUEST_CREATED, ALLOWED, ORG)], setup=_make_grant),
    Row("original approved", _original_decide(True),
        [(A.GRANT_CREATED, ALLOWED, ORG), (A.ORIGINAL_REQUEST_APPROVED, ALLOWED, ORG)], setup=_make_request),
    Row("original declined", _original_decide(False), [(A.ORIGINAL_REQUEST_DECLINED, ALLOWED, ORG)],
        setup=_make_request),
    # revoking a share withdraws the requests for the original still waiting under it
    Row("original request withdrawn", _share_revoke,
        [(A.GRANT_REVOKED, ALLOWED, ORG), (A.ORIGINAL_REQUEST_WITHDRAWN, ALLOWED, ORG)], setup=_make_request),
    Row("attachment added", _attachment_add, [(A.ATTACHMENT_ADDED, ALLOWED, ORG)]),
    Row("attachment downloaded", _attachment_download, [(A.ATTACHMENT_DOWNLOADED, ALLOWED, ORG)],
        setup=_attachment_add),
    Row("tumor board created", _board_create, [(A.BOARD_CREATED, ALLOWED, ORG)]),
    # starting grants each participant but the host the case; ending revokes those grants
    Row("tumor board started", _board_start, [(A.GRANT_CREATED, ALLOWED, ORG), (A.BOARD_STARTED, ALLOWED, ORG)],
        setup=_board_create),
    Row("tumor board ended", _board_end, [(A.GRANT_REVOKED, ALLOWED, ORG), (A.BOARD_ENDED, ALLOWED, ORG)],
        setup=_board_started),
    # nobody ended it: the sweep records when its participants' access ended, once
    # (its grant expired, then the board: the sweep's two events)
    Row("tumor board window ran out", _board_window_sweep,
        [(A.SHARE_EXPIRED, ALLOWED, ORG), (A.BOARD_WINDOW_ENDED, ALLOWED, ORG)], setup=_board_window_run_out),
    Row("share link revoked", _link_revoke, [(A.SHARE_LINK_REVOKED, ALLOWED, ORG)], setup=_link_make),
    Row("study ingested", _ingest, [(A.IMAGING_INGEST, ALLOWED, ORG), (A.IMAGING_STUDY_INGESTED, ALLOWED, ORG)]),
    Row("study deleted", _study_delete, [(A.IMAGING_STUDY_DELETED, ALLOWED, ORG)], setup=_ingest),
    Row("study attached to a case", _study_attach, [(A.IMAGING_STUDY_ATTACHED, ALLOWED, ORG)], setup=_loose_study),
    # closing a case revokes its live grants, each recorded (with the requests for the original
    # waiting under it, withdrawn), then records the close
    Row("case closed", _case_close, _case_close_events),
    Row("case reopened", _case_reopen, [(A.CASE_REOPENED, ALLOWED, ORG)], setup=_case_close),
    # --- second factor
    Row("MFA enrolment", _mfa_enrol, [(A.AUTH_MFA_ENROLLED, ALLOWED, ORG)], setup=_mfa_enrol_start),
    Row("recovery codes saved", _recovery_codes_save, [(A.AUTH_MFA_RECOVERY_CODES_SAVED, ALLOWED, ORG)],
        setup=_enrolled_unsaved),
    Row("MFA code accepted", _otp_verify, [(A.AUTH_OTP_VERIFIED, ALLOWED, ORG)], setup=_mfa_client),
    Row("MFA failure", _otp_wrong, [(A.AUTH_OTP_FAILED, DENIED, ORG)], setup=_mfa_client),
    Row("MFA locked after wrong codes", _otp_wrong,
        [(A.AUTH_OTP_FAILED, DENIED, ORG), (A.AUTH_OTP_LOCKED_OUT, DENIED, ORG)], setup=_otp_almost_locked),
    Row("MFA refused while locked", _otp_wrong, [(A.AUTH_OTP_REFUSED_LOCKED, DENIED, ORG)], setup=_otp_locked),
    Row("recovery code used", _recovery_code_use,
        [(A.AUTH_MFA_RECOVERY_CODE_USED, ALLOWED, ORG), (A.AUTH_OTP_VERIFIED, ALLOWED, ORG)], setup=_mfa_client),
    Row("recovery codes renewed", _recovery_codes_renew, [(A.AUTH_MFA_RECOVERY_CODES_RENEWED, ALLOWED, ORG)],
        setup=lambda w: (_mfa_client(w), _otp_verify(w))),
    Row("step-up required", _step_up, [(A.AUTH_STEP_UP_REQUIRED, DENIED, ORG)], setup=_step_up_needed),
    Row("MFA reset by an admin", _mfa_reset,
        [(A.AUTH_MFA_RESET, ALLOWED, ORG), (A.AUTH_SESSIONS_ENDED, ALLOWED, ORG)], setup=_mfa_client),
    # --- sign-in limits and single sign-on
    Row("idle timeout", _idle_timeout, [(A.AUTH_IDLE_TIMEOUT, ALLOWED, ORG), (A.AUTH_SIGNED_OUT, ALLOWED, ORG)],
        setup=_idle),
    # axes announces the lock before Django's "login failed" signal of the same attempt
    Row("locked out", _locked_out, [(A.AUTH_LOCKED_OUT, DENIED, ORG), (A.AUTH_SIGN_IN_FAILED, DENIED, ORG)],
        setup=_locked_almost),
    Row("password sign-in refused (SSO)", _password_refused, [(A.AUTH_PASSWORD_LOGIN_REFUSED, DENIED, ORG)],
        setup=_sso_org),
    Row("SSO settings changed", _sso_change, [(A.ORGANIZATION_SSO_CHANGED, ALLOWED, ORG)]),
    Row("SSO sign-in linked", _sso_linked, [(A.AUTH_SSO_LINKED, ALLOWED, ORG)], setup=_sso_org),
    Row("SSO sign-in refused", _sso_refused, [(A.AUTH_SSO_REFUSED, DENIED, ORG)], setup=_sso_org),
    # recorded in the chain of each organization of the person
    Row("SSO sign-in refused (member of other organizations)", _sso_refused_elsewhere,
        [(A.AUTH_SSO_REFUSED_OTHER_ORGANIZATIONS, DENIED, ORG),
         (A.AUTH_SSO_REFUSED_OTHER_ORGANIZATIONS, DENIED, "org beta")], setup=_sso_member_elsewhere),
    # signed out (recorded in the chain of each organization of the person) once the person reaches
    # another organization: A's provider could no longer sign them in
    Row("SSO session ended (other organizations reached since)", _sso_session_ended,
        [(A.AUTH_SSO_SESSION_ENDED, DENIED, ORG), (A.AUTH_SSO_SESSION_ENDED, DENIED, "org beta"),
         (A.AUTH_SIGNED_OUT, ALLOWED, ORG), (A.AUTH_SIGNED_OUT, ALLOWED, "org beta")],
        setup=_sso_session_then_elsewhere),
    # --- invitations
    Row("invitation sent", _invite, [(A.INVITATION_CREATED, ALLOWED, ORG)]),
    Row("invitation revoked", _invite_revoke, [(A.INVITATION_REVOKED, ALLOWED, ORG)], setup=_invite),
    Row("invitation sent again", _invite_resend, [(A.INVITATION_RESENT, ALLOWED, ORG)], setup=_invite),
    Row("invitation accepted (new account)", _invite_accept_new_account,
        [(A.ACCOUNT_CREATED, ALLOWED, ORG), (A.INVITATION_ACCEPTED, ALLOWED, ORG), (A.AUTH_SIGNED_IN, ALLOWED, ORG)],
        setup=_invite),
    Row("invitation accepted (signed in)", _invite_accept_signed_in, [(A.INVITATION_ACCEPTED, ALLOWED, ORG)],
        setup=_invite_existing),
    Row("invitation refused", _invite_unknown, [(A.INVITATION_REFUSED, DENIED, GLOBAL)]),
    Row("invitation tokens locked", _invite_unknown_locked,
        [(A.INVITATION_TOKEN_LOCKED_OUT, DENIED, GLOBAL), (A.INVITATION_REFUSED, DENIED, GLOBAL)],
        setup=_invite_unknown_almost_locked),
    Row("invitation birth date wrong", _birth_date_wrong, [(A.INVITATION_BIRTH_DATE_FAILED, DENIED, ORG)],
        setup=_invite_patient),
    # --- settings, boards
    Row("sharing policy updated", _sharing_policy_update, [(A.SHARING_POLICY_UPDATED, ALLOWED, ORG)]),
    Row("tumor board edited", _board_edit, [(A.BOARD_EDITED, ALLOWED, ORG)], setup=_board_create),
    # --- uploads
    Row("upload started", _upload_create, [(A.IMAGING_UPLOAD_CREATED, ALLOWED, ORG)]),
    Row("study uploaded", _upload_finish, [(A.IMAGING_UPLOAD_COMPLETED, ALLOWED, ORG)], setup=_upload_create),
    Row("upload cancelled", _upload_cancel, [(A.IMAGING_UPLOAD_DELETED, ALLOWED, ORG)], setup=_upload_create),
    Row("upload status read", _upload_status_read, [(A.UPLOAD_REPORT_VIEWED, ALLOWED, ORG)],
        setup=_upload_received),
    Row("upload report page viewed", _upload_report_view, [(A.UPLOAD_REPORT_VIEWED, ALLOWED, ORG)],
        setup=_upload_received),
    Row("upload expired", _upload_expire, [(A.IMAGING_UPLOAD_EXPIRED, ALLOWED, ORG)], setup=_upload_create),
    Row("failed upload's file discarded", _failed_upload_discard, [(A.IMAGING_UPLOAD_DISCARDED, ALLOWED, ORG)],
        setup=_upload_failed_long_ago),
    # --- viewer and downloads
    Row("study page view", _study_page, [(A.STUDY_VIEWED, ALLOWED, ORG)], setup=_study),
    Row("study page refused to another organization", _study_page_denied, [(A.ACCESS_DENIED, DENIED, ORG)],
        setup=_study),
    Row("viewer opened", _viewer_open, [(A.VIEWER_OPENED, ALLOWED, ORG)], setup=_study),
    Row("viewer closed", _viewer_close, [(A.VIEWER_CLOSED, ALLOWED, ORG)], setup=_study_and_viewer),
    Row("viewer closed after idling", _viewer_timeout, [(A.VIEWER_CLOSED, ALLOWED, ORG)], setup=_study_and_viewer),
    Row("download completed", _download_complete,
        [(A.DOWNLOAD_STARTED, ALLOWED, ORG), (A.DOWNLOAD_COMPLETED, ALLOWED, ORG)], setup=_study),
    Row("download incomplete", _download_part,
        [(A.DOWNLOAD_STARTED, ALLOWED, ORG), (A.DOWNLOAD_INCOMPLETE, ALLOWED, ORG)], setup=_study),
    Row("education copy shown on the patient portal", _education_viewed,
        [(A.GRANT_OPENED, ALLOWED, ORG), (A.EDUCATION_VIEWED, ALLOWED, ORG)], setup=_study_shared_with_a_patient),
    Row("download on a share", _download_on_grant,
        [(A.GRANT_DOWNLOAD, ALLOWED, ORG), (A.DOWNLOAD_STARTED, ALLOWED, ORG), (A.DOWNLOAD_COMPLETED, ALLOWED, ORG)],
        setup=_study_shared),
    # --- links, expiry
    Row("share refused (anonymous links off)", _share_refused, [(A.SHARE_REFUSED, DENIED, ORG)],
        setup=_anonymous_links_off),
    Row("share accepted by the invited address", _link_accept,
        [(A.GRANT_ACCEPTED, ALLOWED, ORG), (A.GRANT_OPENED, ALLOWED, ORG)], setup=_email_share),
    Row("shared case opened", _link_open, [(A.GRANT_OPENED, ALLOWED, ORG)], setup=_user_share),
    Row("share link refused", _link_wrong_recipient, [(A.SHARE_LINK_REFUSED, DENIED, ORG)], setup=_user_share),
    Row("share link code wrong", _passcode_wrong, [(A.SHARE_LINK_SECOND_FACTOR_FAILED, DENIED, ORG)],
        setup=_passcode_share),
    Row("share expired", _share_expire, [(A.SHARE_EXPIRED, ALLOWED, ORG)], setup=_make_grant),
    Row("audit trail exported", _audit_export, [(A.AUDIT_EXPORTED, ALLOWED, ORG)]),
    Row("encryption keys re-wrapped", _keys_rotate, [(A.KEYS_ROTATED, ALLOWED, GLOBAL)]),
    Row("organization onboarded", _organization_create,
        [(A.ORGANIZATION_CREATED, ALLOWED, "org onboarded"), (A.MEMBERSHIP_ADDED, ALLOWED, "org onboarded")]),
    # --- de-identification: the export's run records once, when it is ready
    Row("de-identified export made", _deid_export,
        [(A.DEID_EXPORT_STARTED, ALLOWED, ORG), (A.DEID_EXPORTED, ALLOWED, ORG)], setup=_study),
    Row("de-identified export failed", _deid_export_fail,
        [(A.DEID_EXPORT_STARTED, ALLOWED, ORG), (A.DEID_EXPORT_FAILED, FAILED, ORG)], setup=_study),
    # --- last: its setup alters one of the study's stored originals, which the rows above read
    Row("altered original read by the viewer", _altered_original_frame,
        [(A.BLOB_INTEGRITY_FAILED, FAILED, ORG)], setup=_altered_original),
]

#: actions of the vocabulary whose feature is not built yet, or not yet driven here
NOT_YET_DRIVEN: set[str] = set()


@pytest.fixture(scope="session")
def ct_folder(tmp_path_factory):
    """A 2-slice synthetic CT series (fictional patient)."""
    from bench.ingest.synthetic import write_ct_series

    folder = tmp_path_factory.mktemp("trail_ct")
    write_ct_series(folder, slices=2, rows=32, columns=32)
    return folder


@pytest.fixture
def w(org_a, org_b, admin_a, clinician_a, ct_folder, settings):
    world = SimpleNamespace(org=org_a, admin=admin_a, clinician=clinician_a, settings=settings)
    world.coordinator = member(org_a, Role.COORDINATOR, email="coordinator@alpha.example")
    world.radiologist = member(org_a, Role.RADIOLOGIST, email="radiologist@alpha.example")
    world.consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    world.outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    # the MRN the synthetic series' images carry: a patient is given only studies of their own
    # patient ID (policy.held_back_from_patient), and the trail shows the patient's education copy
    world.patient = PatientFactory(organization=org_a, mrn="SYN-0001")
    world.case = CaseFactory(organization=org_a, patient=world.patient, created_by=clinician_a,
                             responsible_clinician=clinician_a)
    world.ct_folder = ct_folder
    world.other_org = org_b
    world.dicom_bytes = sorted(ct_folder.iterdir())[0].read_bytes()
    # signed in before the rows run (a sign-in is an event of its own)
    world.clients = {"anonymous": Client()}
    for name, user in (("clinician", clinician_a), ("outsider", world.outsider), ("leaving", world.coordinator),
                       ("consultant", world.consultant), ("admin", admin_a)):
        world.clients[name] = Client()
        world.clients[name].force_login(user)
    return world


def _events_after(last_id: int, org) -> list[tuple[str, str, str]]:
    rows = AuditEvent.objects.filter(id__gt=last_id).order_by("id").values_list("action", "outcome",
                                                                                "organization_id")
    from apps.organizations.models import Organization

    slugs = dict(Organization.objects.values_list("pk", "slug"))  # another organization: "org <slug>"
    return [(a, o, GLOBAL if org_id is None else ORG if org_id == org.pk else f"org {slugs.get(org_id, org_id)}")
            for a, o, org_id in rows]


def _last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _drive(row: Row, w) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    row.setup(w)
    expected = row.expected(w)
    before = _last_id()
    row.drive(w)
    return _events_after(before, w.org), expected


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_each_action_leaves_exactly_its_events(row, w, verify_audit):
    found, expected = _drive(row, w)
    assert found == expected
    code, out = verify_audit()
    assert code == 0, out


def test_all_actions_in_one_trail_in_order(w, verify_audit):
    """Every row once, one after the other: the trail holds exactly the expected events, in
    order, in their chains, and every chain verifies."""
    expected, found = [], []
    start = _last_id()
    for row in ROWS:
        if row.name != "case reopened":  # the row before closed the case: no second close
            row.setup(w)
        expected.append(row.expected(w))
        before = _last_id()
        row.drive(w)
        found.append(_events_after(before, w.org))
        w.case.refresh_from_db()
    assert found == expected
    flat = [e for block in expected for e in block]
    assert len(_events_after(start, w.org)) >= len(flat)  # setups may add their own events
    code, out = verify_audit()
    assert code == 0, out
    org_events = AuditEvent.objects.filter(organization=w.org).order_by("seq")
    seqs = list(org_events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert list(org_events.values_list("id", flat=True)) == sorted(org_events.values_list("id", flat=True))


def test_every_action_is_driven_or_listed():
    driven = {action for row in ROWS if not callable(row.expect) for action, _, _ in row.expect}
    driven |= {A.CASE_CLOSED}
    assert set(A.ALL) - driven - NOT_YET_DRIVEN == set(), "add a row to ROWS (or list it in NOT_YET_DRIVEN)"
    assert driven & NOT_YET_DRIVEN == set(), "driven now: remove it from NOT_YET_DRIVEN"


def test_recorded_actions_in_the_code_are_in_the_vocabulary():
    """Every literal action name passed to record(...) in apps/ is part of the vocabulary."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "apps"
    names = set()
    for path in root.rglob("*.py"):
        for match in re.finditer(r"record\(\s*action=\"([a-z_.]+)\"", path.read_text()):
            names.add(match.group(1))
    assert names, "the scan found nothing"
    assert names - set(A.ALL) == set(), "add these to apps/audit/actions.py and apps/audit/fhir.py"


def test_timestamps_follow_the_chain(w):
    for row in ROWS[:6]:
        _drive(row, w)
    times = list(AuditEvent.objects.filter(organization=w.org).order_by("seq").values_list("created_at", flat=True))
    assert times == sorted(times)
    assert times[-1] <= timezone.now()


def test_a_user_agent_with_a_nul_is_recorded_without_it(org_a, admin_a):
    """uvicorn refuses such a header, but another server in front may pass it: the event must
    still be recorded (PostgreSQL refuses text holding NUL)."""
    from apps.audit.services import record

    request = RequestFactory().get("/", HTTP_USER_AGENT="Mozilla/5.0\x00(probe)")
    event = record(action=A.CASE_VIEWED, actor=admin_a, organization=org_a, request=request)
    assert AuditEvent.objects.get(pk=event.pk).user_agent == "Mozilla/5.0(probe)"
