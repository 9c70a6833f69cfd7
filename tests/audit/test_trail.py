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
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from tests.factories import TEST_PASSWORD, CaseFactory, GrantFactory, PatientFactory, member

pytestmark = pytest.mark.django_db

ORG, GLOBAL = "org", "global"
ALLOWED, DENIED = "allowed", "denied"


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


def _policy_change(w):
    from apps.organizations.services import organization_update_policy

    organization_update_policy(organization=w.org, by=w.admin,
                               values={"invitation_ttl_hours": w.org.invitation_ttl_hours + 1})


def _patient_create(w):
    from apps.cases.services import patient_get_or_create

    patient_get_or_create(organization=w.org, by=w.clinician, mrn="TRAIL-1", name="Generated Person")


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

    study_delete(study=Study.objects.get(case=w.case), by=w.clinician)


def _unrevoked_grants(w) -> int:
    from apps.sharing.models import Grant

    return Grant.objects.filter(case=w.case, revoked_at__isnull=True).count()  # what case_close revokes


ROWS = [
    Row("sign-in", _sign_in, [(A.AUTH_SIGNED_IN, ALLOWED, GLOBAL)]),
    Row("sign-out", _sign_out, [(A.AUTH_SIGNED_OUT, ALLOWED, GLOBAL)]),
    Row("failed sign-in", _sign_in_failed, [(A.AUTH_SIGN_IN_FAILED, DENIED, GLOBAL)]),
    Row("member added", _member_add, [(A.MEMBERSHIP_ADDED, ALLOWED, ORG)]),
    Row("role change", _role_change, [(A.MEMBERSHIP_UPDATED, ALLOWED, ORG)]),
    Row("policy change", _policy_change, [(A.ORGANIZATION_POLICY_CHANGED, ALLOWED, ORG)]),
    Row("patient created", _patient_create, [(A.PATIENT_CREATED, ALLOWED, ORG)]),
    Row("case created", _case_create, [(A.CASE_CREATED, ALLOWED, ORG)]),
    Row("case page view", _case_view, [(A.CASE_VIEWED, ALLOWED, ORG)]),
    Row("denial by the policy", _case_view_denied, [(A.ACCESS_DENIED, DENIED, ORG)]),
    Row("case edited", _case_edit, [(A.CASE_EDITED, ALLOWED, ORG)]),
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
    Row("attachment added", _attachment_add, [(A.ATTACHMENT_ADDED, ALLOWED, ORG)]),
    Row("attachment downloaded", _attachment_download, [(A.ATTACHMENT_DOWNLOADED, ALLOWED, ORG)],
        setup=_attachment_add),
    Row("tumor board created", _board_create, [(A.BOARD_CREATED, ALLOWED, ORG)]),
    # starting grants each participant but the host the case; ending revokes those grants
    Row("tumor board started", _board_start, [(A.GRANT_CREATED, ALLOWED, ORG), (A.BOARD_STARTED, ALLOWED, ORG)],
        setup=_board_create),
    Row("tumor board ended", _board_end, [(A.GRANT_REVOKED, ALLOWED, ORG), (A.BOARD_ENDED, ALLOWED, ORG)],
        setup=_board_started),
    Row("share link revoked", _link_revoke, [(A.SHARE_LINK_REVOKED, ALLOWED, ORG)], setup=_link_make),
    Row("study ingested", _ingest, [(A.IMAGING_INGEST, ALLOWED, ORG), (A.IMAGING_STUDY_INGESTED, ALLOWED, ORG)]),
    Row("study deleted", _study_delete, [(A.IMAGING_STUDY_DELETED, ALLOWED, ORG)], setup=_ingest),
    # closing a case revokes its live grants, each recorded, then records the close
    Row("case closed", _case_close, lambda w: [(A.GRANT_REVOKED, ALLOWED, ORG)] * _unrevoked_grants(w)
        + [(A.CASE_CLOSED, ALLOWED, ORG)]),
    Row("case reopened", _case_reopen, [(A.CASE_REOPENED, ALLOWED, ORG)], setup=_case_close),
]

#: actions of the vocabulary whose feature is not built yet, or not yet driven here (the lead
#: extends ROWS as features land)
NOT_YET_DRIVEN = {
    A.MFA_ENROLLED, A.MFA_FAILED, A.INVITATION_SENT, A.INVITATION_ACCEPTED,
    A.STUDY_UPLOADED, A.STUDY_INGESTED, A.STUDY_DELETED, A.VIEWER_OPENED, A.VIEWER_CLOSED,
    A.DOWNLOAD_COMPLETED, A.DOWNLOAD_INCOMPLETE, A.DEID_EXPORTED,
    A.SHARE_CREATED, A.SHARE_EXTENDED, A.SHARE_RENEWED, A.SHARE_REVOKED, A.SHARE_EXPIRED, A.SHARE_REFUSED,
    A.ORIGINAL_REQUESTED, A.ORIGINAL_APPROVED, A.ORIGINAL_DECLINED,
    A.GRANT_ACCEPTED, A.GRANT_OPENED, A.GRANT_DOWNLOAD, A.SHARE_LINK_REFUSED,
    A.SHARE_LINK_SECOND_FACTOR_FAILED, A.BOARD_EDITED,
    A.AUDIT_EXPORTED,  # driven in tests/audit/test_fhir.py
    # names the accounts and imaging features record (in progress while this table was written)
    A.AUTH_MFA_ENROLLED, A.AUTH_MFA_RESET, A.AUTH_MFA_RECOVERY_CODES_SAVED, A.AUTH_MFA_RECOVERY_CODE_USED,
    A.AUTH_OTP_VERIFIED, A.AUTH_OTP_FAILED, A.AUTH_OTP_LOCKED_OUT, A.AUTH_OTP_REFUSED_LOCKED,
    A.AUTH_STEP_UP_REQUIRED, A.AUTH_IDLE_TIMEOUT, A.AUTH_SESSIONS_ENDED, A.AUTH_PASSWORD_LOGIN_REFUSED,
    A.AUTH_SSO_REFUSED, A.AUTH_SSO_LINKED, A.AUTH_LOCKED_OUT, A.ACCOUNT_CREATED, A.INVITATION_CREATED,
    A.INVITATION_REVOKED, A.INVITATION_REFUSED, A.INVITATION_BIRTH_DATE_FAILED, A.INVITATION_TOKEN_LOCKED_OUT,
    A.ORGANIZATION_SSO_CHANGED, A.IMAGING_UPLOAD_CREATED,
    A.IMAGING_UPLOAD_COMPLETED, A.IMAGING_UPLOAD_DELETED, A.IMAGING_UPLOAD_EXPIRED,
    A.AUTH_MFA_RECOVERY_CODES_RENEWED, A.SHARING_POLICY_UPDATED,
}


@pytest.fixture(scope="session")
def ct_folder(tmp_path_factory):
    """A 2-slice synthetic CT series (fictional patient)."""
    from bench.ingest.synthetic import write_ct_series

    folder = tmp_path_factory.mktemp("trail_ct")
    write_ct_series(folder, slices=2, rows=32, columns=32)
    return folder


@pytest.fixture
def w(org_a, org_b, admin_a, clinician_a, ct_folder):
    world = SimpleNamespace(org=org_a, admin=admin_a, clinician=clinician_a)
    world.coordinator = member(org_a, Role.COORDINATOR, email="coordinator@alpha.example")
    world.radiologist = member(org_a, Role.RADIOLOGIST, email="radiologist@alpha.example")
    world.consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    world.outsider = member(org_b, Role.CLINICIAN, email="outsider@beta.example")
    world.patient = PatientFactory(organization=org_a)
    world.case = CaseFactory(organization=org_a, patient=world.patient, created_by=clinician_a,
                             responsible_clinician=clinician_a)
    world.ct_folder = ct_folder
    # signed in before the rows run (a sign-in is an event of its own)
    world.clients = {}
    for name, user in (("clinician", clinician_a), ("outsider", world.outsider), ("leaving", world.coordinator)):
        world.clients[name] = Client()
        world.clients[name].force_login(user)
    return world


def _events_after(last_id: int, org) -> list[tuple[str, str, str]]:
    rows = AuditEvent.objects.filter(id__gt=last_id).order_by("id").values_list("action", "outcome",
                                                                                "organization_id")
    return [(a, o, GLOBAL if org_id is None else ORG if org_id == org.pk else f"org {org_id}")
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
