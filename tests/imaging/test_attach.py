"""Attaching a study uploaded with no case ("No case (attach later)") to a case afterwards: who
may (whoever may upload into that case, by the policy's one rule), into which cases (open ones of
the study's own organization), what it does (every version in no case goes, each audited), who
then sees the study (the case's shares on the whole case, told before confirming), and what is
refused with a message, never a 500 (a case in another organization, a closed case, a study in a
case already, one an ingest is still filling)."""

from __future__ import annotations

import html as html_lib
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cases.models import Case
from apps.imaging.models import IngestJob, JobState, Study
from apps.imaging.services import StudyAttachRefused, StudyBusy, ingest_job_create, study_attach
from apps.organizations.models import Role
from apps.sharing import services as sharing
from tests.factories import CaseFactory, MembershipFactory, StudyFactory, member
from tests.threads import in_thread_until_blocked, waiting_on_a_lock

pytestmark = pytest.mark.django_db

ATTACHED = "imaging.study_attached"
#: the MRN of ``case``'s patient, and the patient ID in ``loose``'s images
PATIENT_ID = "MRN-ATTACH-1"


def _url(study) -> str:
    return reverse("imaging:study_attach", kwargs={"study_id": study.public_id})


@pytest.fixture
def clinician(org_a):
    return member(org_a, Role.CLINICIAN, email="clinician@alpha.example")


@pytest.fixture
def case(org_a, clinician):
    return CaseFactory(organization=org_a, created_by=clinician, responsible_clinician=clinician, title="Nodule",
                       patient__mrn=PATIENT_ID)


@pytest.fixture
def loose(org_a):
    """A study uploaded with "No case (attach later)", of ``case``'s patient (the patient ID in
    its images is the case's MRN: no box to tick to attach it there)."""
    return StudyFactory(organization=org_a, case=None, study_description="CT abdomen", patient_id=PATIENT_ID)


def _grant(case, grantee, by, **kwargs):
    return sharing.grant_create(case=case, grantee=grantee, by=by, permissions=["view"],
                                expires_at=timezone.now() + timedelta(hours=2), **kwargs)


def test_attaching_from_the_study_page_works_and_is_audited(client_as, clinician, case, loose):
    client = client_as(clinician)
    page = client.get(loose.get_absolute_url()).content.decode()
    assert 'data-testid="attach-form"' in page and str(case.public_id) in page
    confirm = client.get(_url(loose), {"case": str(case.public_id)})
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Nodule" in html and 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert Study.objects.get(pk=loose.pk).case_id is None  # a GET only asks
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()

    r = client.post(_url(loose), {"case": str(case.public_id)})
    assert r.status_code == 302 and r["Location"] == loose.get_absolute_url()
    assert Study.objects.get(pk=loose.pk).case_id == case.pk
    event = AuditEvent.objects.get(action=ATTACHED)
    assert (event.actor_id, event.outcome, event.target_id) == (clinician.pk, "allowed", str(loose.public_id))
    assert event.details == {"case": str(case.public_id), "version": 1}
    assert event.case_ref == case.public_id
    followed = client.get(r["Location"]).content.decode()
    assert "The study was attached to the case." in followed
    assert 'data-testid="attach-form"' not in followed  # in a case now: nothing more to attach


def test_post_without_csrf_token_is_refused(org_a, clinician, case, loose):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    assert client.post(_url(loose), {"case": str(case.public_id)}).status_code == 403
    assert Study.objects.get(pk=loose.pk).case_id is None


def test_a_case_of_another_organization_is_refused(client_as, org_a, org_b, clinician, loose):
    foreign = CaseFactory(organization=org_b)
    MembershipFactory(user=clinician, organization=org_b, role=Role.CLINICIAN)  # may upload there too
    with pytest.raises(StudyAttachRefused) as refused:
        study_attach(study=loose, case=foreign, by=clinician)
    assert refused.value.code == "other_organization"
    r = client_as(clinician).post(_url(loose), {"case": str(foreign.public_id)}, follow=True)
    assert r.status_code == 200 and "Choose an open case you may upload studies into." in r.content.decode()
    assert Study.objects.get(pk=loose.pk).case_id is None
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()


def test_a_closed_case_is_refused(client_as, clinician, case, loose):
    Case.objects.filter(pk=case.pk).update(status="closed")
    case.refresh_from_db()
    with pytest.raises(PermissionDenied):
        study_attach(study=loose, case=case, by=clinician)
    client = client_as(clinician)
    for r in (client.get(_url(loose), {"case": str(case.public_id)}, follow=True),
              client.post(_url(loose), {"case": str(case.public_id)}, follow=True)):
        assert r.status_code == 200 and "Choose an open case you may upload studies into." in r.content.decode()
    assert Study.objects.get(pk=loose.pk).case_id is None
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()


def test_a_role_that_may_not_upload_is_refused(client_as, org_a, case, loose):
    admin = member(org_a, Role.ORG_ADMIN)  # sees the study (case status), may not upload
    client = client_as(admin)
    page = client.get(loose.get_absolute_url())
    assert page.status_code == 200 and 'id="attach-heading"' not in page.content.decode()
    assert client.get(_url(loose), {"case": str(case.public_id)}).status_code == 403
    assert client.post(_url(loose), {"case": str(case.public_id)}).status_code == 403
    with pytest.raises(PermissionDenied):
        study_attach(study=loose, case=case, by=admin)
    assert Study.objects.get(pk=loose.pk).case_id is None
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=admin, details__wanted="upload_study").exists()


def test_an_outside_grantee_cannot_attach(client_as, org_a, clinician, case, loose):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    sharing.grant_create(case=case, grantee=consultant, by=clinician, expires_at=timezone.now() + timedelta(hours=2),
                         permissions=["view", "download_preview", "download_original", "reshare"])
    client = client_as(consultant)
    assert client.get(_url(loose), {"case": str(case.public_id)}).status_code == 404  # a study in no case: unseen
    assert client.post(_url(loose), {"case": str(case.public_id)}).status_code == 404
    with pytest.raises(PermissionDenied):
        study_attach(study=loose, case=case, by=consultant)
    assert Study.objects.get(pk=loose.pk).case_id is None
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()


def test_a_user_of_another_organization_gets_404(client_as, org_b, case, loose):
    client = client_as(member(org_b, Role.CLINICIAN))
    assert client.get(_url(loose), {"case": str(case.public_id)}).status_code == 404
    assert client.post(_url(loose), {"case": str(case.public_id)}).status_code == 404
    assert Study.objects.get(pk=loose.pk).case_id is None


def test_a_study_in_a_case_already_is_refused(client_as, org_a, clinician, case):
    other = CaseFactory(organization=org_a)
    study = StudyFactory(organization=org_a, case=other)
    with pytest.raises(StudyAttachRefused) as refused:
        study_attach(study=study, case=case, by=clinician)
    assert refused.value.code == "attached"
    r = client_as(clinician).post(_url(study), {"case": str(case.public_id)}, follow=True)
    assert r.status_code == 200 and "This study is in a case already." in r.content.decode()
    assert Study.objects.get(pk=study.pk).case_id == other.pk
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()


def test_a_second_submit_is_refused_by_what_the_lock_reads(org_a, clinician, case, loose):
    """Two submits at once: the second one waits for the first's lock, then reads the study in a
    case: refused, nothing recorded twice (its copy of the study, read before, still says none)."""
    stale = Study.objects.get(pk=loose.pk)
    study_attach(study=loose, case=case, by=clinician)
    other = CaseFactory(organization=org_a)
    assert stale.case_id is None
    with pytest.raises(StudyAttachRefused):
        study_attach(study=stale, case=other, by=clinician)
    assert Study.objects.get(pk=loose.pk).case_id == case.pk
    assert AuditEvent.objects.filter(action=ATTACHED).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has one writer)")
def test_two_submits_at_once_the_second_waits_for_the_first_and_is_refused(org_a, clinician, case, loose,
                                                                            monkeypatch):
    """Two people (two connections) attach the same study at once, to two cases: the second waits
    for the first's lock on the study, then reads it in a case and is told so; one attach, one event."""
    from django.test import Client

    from apps.imaging import services as imaging_services

    other = CaseFactory(organization=org_a, patient=case.patient)  # the same patient's other case
    failures: list[BaseException] = []
    second: dict = {}
    started: list = []

    def submit_to_other():
        client = Client()
        client.force_login(clinician)
        second["response"] = client.post(_url(loose), {"case": str(other.public_id)}, follow=True)

    real = imaging_services.record

    def record_once_the_second_waits(**kwargs):  # inside the first's transaction, the study locked
        if not started:
            started.append(in_thread_until_blocked(failures, submit_to_other))
            second["waited"] = waiting_on_a_lock()
        return real(**kwargs)

    monkeypatch.setattr(imaging_services, "record", record_once_the_second_waits)
    first = Client()
    first.force_login(clinician)
    assert first.post(_url(loose), {"case": str(case.public_id)}).status_code == 302
    started[0].join(timeout=30)
    assert not failures
    assert any("FOR UPDATE" in q for q in second["waited"]), second["waited"]
    assert second["response"].status_code == 200
    assert "This study is in a case already." in second["response"].content.decode()
    assert Study.objects.get(pk=loose.pk).case_id == case.pk
    assert AuditEvent.objects.filter(action=ATTACHED).count() == 1


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING])
def test_refused_while_an_ingest_of_it_runs(client_as, org_a, clinician, case, loose, state):
    job = ingest_job_create(organization=org_a, source_path="/nonexistent", enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=state)
    job.studies.add(loose)
    with pytest.raises(StudyBusy):
        study_attach(study=loose, case=case, by=clinician)
    r = client_as(clinician).post(_url(loose), {"case": str(case.public_id)}, follow=True)
    assert r.status_code == 200 and "still being added" in r.content.decode()
    assert Study.objects.get(pk=loose.pk).case_id is None
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()


def test_a_finished_ingest_does_not_hold_it(org_a, clinician, case, loose):
    job = ingest_job_create(organization=org_a, source_path="/nonexistent", enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.DONE)
    job.studies.add(loose)
    assert [s.pk for s in study_attach(study=loose, case=case, by=clinician)] == [loose.pk]
    assert Study.objects.get(pk=loose.pk).case_id == case.pk


def test_every_version_in_no_case_goes_with_it(client_as, org_a, clinician, case, loose):
    v2 = StudyFactory(organization=org_a, case=None, study_instance_uid=loose.study_instance_uid, version=2,
                      previous=loose, patient_id=PATIENT_ID)
    unrelated = StudyFactory(organization=org_a, case=None)
    client = client_as(clinician)
    confirm = client.get(_url(v2), {"case": str(case.public_id)}).content.decode()
    assert "1 other version of this study, in no case either, is attached with it." in confirm
    r = client.post(_url(v2), {"case": str(case.public_id)}, follow=True)
    assert "with its other versions: 2 versions in all." in r.content.decode()
    assert set(Study.objects.filter(case=case).values_list("pk", flat=True)) == {loose.pk, v2.pk}
    assert Study.objects.get(pk=unrelated.pk).case_id is None
    events = AuditEvent.objects.filter(action=ATTACHED).order_by("seq")
    assert [(e.target_id, e.details["version"]) for e in events] == [(str(loose.public_id), 1),
                                                                     (str(v2.public_id), 2)]


def test_a_case_wide_share_reaches_the_study_once_attached_a_study_scoped_one_does_not(client_as, org_a, clinician,
                                                                                       case, loose):
    named = StudyFactory(organization=org_a, case=case)
    whole = member(org_a, Role.EXTERNAL_CONSULTANT, email="whole@alpha.example")
    scoped = member(org_a, Role.EXTERNAL_CONSULTANT, email="scoped@alpha.example")
    _grant(case, whole, clinician)
    _grant(case, scoped, clinician, studies=[named])
    assert client_as(whole).get(loose.get_absolute_url()).status_code == 404
    study_attach(study=loose, case=case, by=clinician)
    assert client_as(whole).get(loose.get_absolute_url()).status_code == 200
    assert client_as(scoped).get(loose.get_absolute_url()).status_code == 404
    assert client_as(scoped).get(named.get_absolute_url()).status_code == 200


def test_the_confirmation_names_the_case_wide_shares_only(client_as, org_a, clinician, case, loose):
    named = StudyFactory(organization=org_a, case=case)
    whole = member(org_a, Role.EXTERNAL_CONSULTANT, email="whole@alpha.example")
    scoped = member(org_a, Role.EXTERNAL_CONSULTANT, email="scoped@alpha.example")
    revoked = member(org_a, Role.EXTERNAL_CONSULTANT, email="revoked@alpha.example")
    _grant(case, whole, clinician)
    _grant(case, scoped, clinician, studies=[named])
    sharing.grants_revoke(grants=[_grant(case, revoked, clinician)], by=clinician, reason="test")
    html = client_as(clinician).get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert 'data-testid="attach-reaches"' in html
    assert "whole@alpha.example" in html
    assert "scoped@alpha.example" not in html and "revoked@alpha.example" not in html


def test_the_confirmation_says_when_no_share_reaches_it(client_as, clinician, case, loose):
    html = client_as(clinician).get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert 'data-testid="attach-reaches-nobody"' in html and 'data-testid="attach-reaches"' not in html


@pytest.mark.parametrize("data", [{}, {"case": ""}, {"case": "garbage"},
                                  {"case": "00000000-0000-0000-0000-000000000000"},
                                  {"case": ["a", "b"]}, {"case": "x" * 5000}, {"case": "\x00"}])
def test_garbage_is_a_message_not_a_500(client_as, clinician, case, loose, data):
    client = client_as(clinician)
    for r in (client.post(_url(loose), data, follow=True), client.get(_url(loose), data, follow=True)):
        assert r.status_code == 200
        assert "Choose an open case you may upload studies into." in r.content.decode()
    assert Study.objects.get(pk=loose.pk).case_id is None


def test_the_study_page_says_why_when_no_case_can_take_it(client_as, org_a, clinician, case, loose):
    Case.objects.filter(pk=case.pk).update(status="closed")
    html = client_as(clinician).get(loose.get_absolute_url()).content.decode()
    assert 'data-testid="attach-none"' in html and 'data-testid="attach-form"' not in html


def test_the_upload_page_leads_to_a_study_in_no_case(client_as, org_a, clinician, loose):
    job = ingest_job_create(organization=org_a, source_path="/nonexistent", created_by=clinician, enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.DONE)
    job.studies.add(loose)
    placed = StudyFactory(organization=org_a)
    job.studies.add(placed)
    html = client_as(clinician).get(reverse("imaging:upload")).content.decode()
    assert loose.get_absolute_url() in html and placed.get_absolute_url() in html
    assert html.count('data-testid="no-case"') == 1  # the study in no case is marked, the other not
    assert "can be attached to one later, from the study's page" in html


def test_sharing_a_study_in_no_case_leads_to_where_it_is_attached(client_as, clinician, case, loose):
    r = client_as(clinician).get(reverse("sharing:study_share", kwargs={"study_id": loose.public_id}))
    assert r.status_code == 302 and r["Location"] == f"{loose.get_absolute_url()}#attach"


def test_attaching_needs_a_recent_second_factor_as_sharing_does(settings, org_a, case, loose):
    """Attaching to a case shared as a whole shares the study with its recipients: someone whose
    second factor is not recent enters a code first (the step-up returns to the confirmation, with
    the case chosen); a POST without it attaches nothing."""
    from tests.accounts.conftest import stale_second_factor_client, totp_code

    settings.LIGHTBOX_MFA_ENFORCED = True
    client, device = stale_second_factor_client(member(org_a, Role.CLINICIAN))
    response = client.post(_url(loose), {"case": str(case.public_id)})
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:step_up"))
    assert Study.objects.get(pk=loose.pk).case_id is None
    confirm = f"{_url(loose)}?case={case.public_id}"
    asked = client.get(confirm)
    assert asked.status_code == 302 and asked["Location"].startswith(reverse("accounts:step_up"))
    back = client.post(reverse("accounts:step_up"), {"code": totp_code(device, ahead=1), "next": confirm})
    assert back["Location"] == confirm
    assert client.get(confirm).status_code == 200
    assert client.post(_url(loose), {"case": str(case.public_id)}).status_code == 302
    assert Study.objects.get(pk=loose.pk).case_id == case.pk


def test_an_attach_is_never_kept_without_its_audit_event(org_a, clinician, case, loose, monkeypatch):
    """The attach and its events are one transaction: when the audit write fails, the study (and
    every version that would have gone with it) stays in no case."""
    from apps.imaging import services
    from tests.factories import audit_write_fails

    older = StudyFactory(organization=org_a, case=None, study_instance_uid=loose.study_instance_uid, version=2,
                         patient_id=PATIENT_ID)
    audit_write_fails(monkeypatch, services, ATTACHED)
    with pytest.raises(RuntimeError):
        study_attach(study=loose, case=case, by=clinician)
    assert set(Study.objects.filter(pk__in=[loose.pk, older.pk]).values_list("case_id", flat=True)) == {None}
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()


def test_no_case_is_chosen_for_the_user(client_as, clinician, case, loose):
    """The study page's case box starts on "Choose a case…" (required), not on the newest case:
    a Continue pressed without looking picks nothing."""
    page = client_as(clinician).get(loose.get_absolute_url()).content.decode()
    box = page[page.index('id="attach-case"'):]
    first = box[box.index("<option"):box.index("</option>")]
    assert 'value=""' in first and "Choose a case" in first


def test_a_version_whose_newer_one_is_in_a_case_only_goes_into_that_case(client_as, org_a, clinician, case, loose):
    """A changed instance uploaded into a case makes a newer version there and leaves the older one
    in no case: that one belongs with it, never in another case, whose shares would reach this
    patient's images."""
    other = CaseFactory(organization=org_a, created_by=clinician, responsible_clinician=clinician, title="Other",
                        patient=case.patient)
    newer = StudyFactory(organization=org_a, case=case, study_instance_uid=loose.study_instance_uid, version=2)
    client = client_as(clinician)
    followed = client.post(_url(loose), {"case": str(other.public_id)}, follow=True).content.decode()
    assert "Another version of this study is in a case already" in followed
    assert Study.objects.get(pk=loose.pk).case_id is None
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()
    assert client.post(_url(loose), {"case": str(case.public_id)}).status_code == 302
    assert Study.objects.get(pk=loose.pk).case_id == case.pk == Study.objects.get(pk=newer.pk).case_id


def test_a_case_closed_meanwhile_takes_no_study(org_a, clinician, case, loose, monkeypatch):
    """The case is read again under a lock: one closed after the policy allowed the attach (a
    close committed in between) is refused, the study left in no case."""
    from apps.cases.models import CaseStatus
    from apps.sharing import policy

    require = policy.require

    def allowed_then_closed(*args, **kwargs):
        require(*args, **kwargs)
        Case.objects.filter(pk=case.pk).update(status=CaseStatus.CLOSED)  # another request closes it

    monkeypatch.setattr(policy, "require", allowed_then_closed)
    with pytest.raises(StudyAttachRefused) as refused:
        study_attach(study=loose, case=case, by=clinician)
    assert refused.value.code == "case_closed"
    assert Study.objects.get(pk=loose.pk).case_id is None


def test_a_case_the_user_may_not_upload_into_is_recorded_as_refused(client_as, clinician, loose):
    """Another organization's case id: a message, and the refusal in that case's trail."""
    foreign = CaseFactory(title="Elsewhere")
    r = client_as(clinician).post(_url(loose), {"case": str(foreign.public_id)})
    assert r.status_code == 302 and Study.objects.get(pk=loose.pk).case_id is None
    denied = AuditEvent.objects.get(action="access.denied", target_id=str(foreign.public_id))
    assert (denied.actor_id, denied.organization_id, denied.details) == (
        clinician.pk, foreign.organization_id, {"wanted": "upload_study"})
    client_as(clinician).post(_url(loose), {"case": "not-an-id"})
    assert AuditEvent.objects.filter(action="access.denied").count() == 1


def test_the_confirmation_shows_both_patients_and_warns_when_they_differ(client_as, clinician, case, loose):
    case.patient.mrn, case.patient.name = "MRN-7", "Case Patient"
    case.patient.save()
    Study.objects.filter(pk=loose.pk).update(patient_id="OTHER-1", patient_name="Image^Patient")
    client = client_as(clinician)
    html = client.get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert 'data-testid="attach-patients"' in html
    assert "OTHER-1" in html and "MRN-7" in html and "Case Patient" in html
    assert 'data-testid="attach-patient-differs"' in html
    Study.objects.filter(pk=loose.pk).update(patient_id="MRN-7")
    html = client.get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert 'data-testid="attach-patients"' in html and 'data-testid="attach-patient-differs"' not in html


# --- another patient's images: a box to tick, checked on the server ---------------------------

CHECKED = 'name="patient_checked"'
REFUSED = "Tick the box to confirm that these images belong to this case&#x27;s patient"


def _confirm_button(html: str) -> str:
    return html[html.rindex("<button", 0, html.index('data-testid="confirm-attach"')):].split(">", 1)[0]


def test_another_patients_images_are_attached_only_once_the_box_is_ticked(client_as, clinician, case, loose):
    """The patient ID in the images is not the case's MRN: the confirmation asks for a required box
    and its button is a danger one; a POST without the box (a forged form, a browser without
    validation) is refused with why, nothing attached or audited; with it, the study is attached."""
    Study.objects.filter(pk=loose.pk).update(patient_id="OTHER-1")
    client = client_as(clinician)
    html = client.get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert CHECKED in html and 'data-testid="attach-patient-differs"' in html
    box = html[html.index(CHECKED) - 200:html.index(CHECKED) + 200]
    assert "required" in box
    assert "I have checked that these images belong to this case&#x27;s patient." in html
    assert 'class="danger"' in _confirm_button(html) and "primary" not in _confirm_button(html)

    for data in ({"case": str(case.public_id)}, {"case": str(case.public_id), "patient_checked": ""}):
        refused = client.post(_url(loose), data)
        assert refused.status_code == 400
        page = refused.content.decode()
        assert REFUSED in page and "Nothing was attached." in page and CHECKED in page
        assert Study.objects.get(pk=loose.pk).case_id is None
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()

    r = client.post(_url(loose), {"case": str(case.public_id), "patient_checked": "on"})
    assert r.status_code == 302 and r["Location"] == loose.get_absolute_url()
    assert Study.objects.get(pk=loose.pk).case_id == case.pk
    assert AuditEvent.objects.filter(action=ATTACHED).count() == 1


@pytest.mark.parametrize("missing", ["", "   "])
def test_images_with_no_patient_id_are_said_to_carry_none_and_still_need_the_box(
        client_as, clinician, case, loose, missing):
    """Found by QA: images that carry no patient ID were said to have a patient ID "not the
    case's MRN". The confirmation says they carry none, as the case page does; the decision (a
    box to tick, checked on the server) is unchanged."""
    Study.objects.filter(pk=loose.pk).update(patient_id=missing)
    client = client_as(clinician)
    html = html_lib.unescape(client.get(_url(loose), {"case": str(case.public_id)}).content.decode())
    assert CHECKED in html and 'data-testid="attach-patient-differs"' in html
    assert "The images carry no patient ID. Check that they are this case's patient's before you attach" in html
    assert "is not the case's MRN" not in html
    refused = client.post(_url(loose), {"case": str(case.public_id)})
    page = html_lib.unescape(refused.content.decode())
    assert refused.status_code == 400 and Study.objects.get(pk=loose.pk).case_id is None
    assert "The images carry no patient ID. Tick the box" in page and "is not the case's MRN" not in page
    # another patient's ID beside it (a second version in no case): that is what is said
    StudyFactory(organization=loose.organization, case=None, study_instance_uid=loose.study_instance_uid,
                 version=2, patient_id="OTHER-1")
    html = html_lib.unescape(client.get(_url(loose), {"case": str(case.public_id)}).content.decode())
    assert "is not the case's MRN" in html and "The images carry no patient ID" not in html


def test_the_same_patient_needs_no_box(client_as, clinician, case, loose):
    html = client_as(clinician).get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert CHECKED not in html and 'data-testid="attach-patient-differs"' not in html
    assert 'class="primary"' in _confirm_button(html)


def test_another_version_of_another_patient_needs_the_box_too(client_as, org_a, clinician, case, loose):
    """Every version in no case goes with the study: one whose images name another patient asks
    for the box, though the version on the page names the case's."""
    StudyFactory(organization=org_a, case=None, study_instance_uid=loose.study_instance_uid, version=2,
                 previous=loose, patient_id="OTHER-2")
    client = client_as(clinician)
    assert CHECKED in client.get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert client.post(_url(loose), {"case": str(case.public_id)}).status_code == 400
    assert set(Study.objects.filter(study_instance_uid=loose.study_instance_uid)
               .values_list("case_id", flat=True)) == {None}


@pytest.mark.parametrize("which", ["itself", "another_version"])
def test_the_service_refuses_another_patients_images_unless_confirmed(org_a, clinician, case, loose, which):
    """The rule lives in the service, so every caller (the page, an API, a command) obeys it:
    another patient's images (in the study or in a version in no case that goes with it) are
    refused unless the caller says the user confirmed, nothing attached or audited; with it,
    every version is attached."""
    if which == "itself":
        Study.objects.filter(pk=loose.pk).update(patient_id="OTHER-1")
    else:
        StudyFactory(organization=org_a, case=None, study_instance_uid=loose.study_instance_uid, version=2,
                     previous=loose, patient_id="OTHER-2")
    with pytest.raises(StudyAttachRefused) as refused:
        study_attach(study=loose, case=case, by=clinician)
    assert refused.value.code == "patient_unconfirmed"
    assert "is not the case's MRN" in " ".join(refused.value.messages)
    assert "Nothing was attached." in " ".join(refused.value.messages)
    assert set(Study.objects.filter(study_instance_uid=loose.study_instance_uid)
               .values_list("case_id", flat=True)) == {None}
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()

    attached = study_attach(study=loose, case=case, by=clinician, patient_confirmed=True)
    assert len(attached) == (1 if which == "itself" else 2)
    assert set(Study.objects.filter(study_instance_uid=loose.study_instance_uid)
               .values_list("case_id", flat=True)) == {case.pk}
    assert AuditEvent.objects.filter(action=ATTACHED).count() == len(attached)


def test_the_service_compares_with_the_mrn_as_the_form_does(org_a, clinician, case, loose):
    """Blanks around either ID are no other patient (one rule, the form's and the service's)."""
    Study.objects.filter(pk=loose.pk).update(patient_id=f" {PATIENT_ID}  ")
    assert [s.pk for s in study_attach(study=loose, case=case, by=clinician)] == [loose.pk]


def test_another_patients_version_made_after_the_page_was_shown_needs_the_box(client_as, org_a, clinician, case,
                                                                              loose):
    """The page showed no box (the case patient's images); a version naming another patient is made
    before the POST: the POST without the box is refused, the page shown again with the box."""
    client = client_as(clinician)
    assert CHECKED not in client.get(_url(loose), {"case": str(case.public_id)}).content.decode()
    StudyFactory(organization=org_a, case=None, study_instance_uid=loose.study_instance_uid, version=2,
                 previous=loose, patient_id="OTHER-2")
    refused = client.post(_url(loose), {"case": str(case.public_id)})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert REFUSED in page and "Nothing was attached." in page and CHECKED in page
    assert set(Study.objects.filter(study_instance_uid=loose.study_instance_uid)
               .values_list("case_id", flat=True)) == {None}
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()


def test_another_patients_version_made_after_the_form_was_checked_is_refused_under_the_lock(
        client_as, org_a, clinician, case, loose, monkeypatch):
    """The form found the case patient's images only (no box), then, before the service locks the
    versions, an upload makes a version naming another patient: the service sees it under its lock
    and refuses, nothing attached or audited; the confirmation comes back with the box to tick."""
    from apps.sharing import policy

    require, made = policy.require, []

    def allowed_then_another_patients_version(user, action, target, **kwargs):
        require(user, action, target, **kwargs)
        if isinstance(target, Case) and not made:  # the service's check: an ingest commits a version meanwhile
            made.append(StudyFactory(organization=org_a, case=None, study_instance_uid=loose.study_instance_uid,
                                     version=2, previous=loose, patient_id="OTHER-2"))

    client = client_as(clinician)
    monkeypatch.setattr(policy, "require", allowed_then_another_patients_version)
    refused = client.post(_url(loose), {"case": str(case.public_id)})
    assert made and refused.status_code == 400
    page = refused.content.decode()
    assert REFUSED in page and "Nothing was attached." in page and CHECKED in page
    assert set(Study.objects.filter(study_instance_uid=loose.study_instance_uid)
               .values_list("case_id", flat=True)) == {None}
    assert not AuditEvent.objects.filter(action=ATTACHED).exists()

    r = client.post(_url(loose), {"case": str(case.public_id), "patient_checked": "on"})
    assert r.status_code == 302
    assert set(Study.objects.filter(study_instance_uid=loose.study_instance_uid)
               .values_list("case_id", flat=True)) == {case.pk}


# --- the second factor attaching asks for: said before, explained on the way, back after ------

ASKS = "Attaching asks for your second factor."
WHY = "Attaching a study to a case asks for your second factor"


def test_the_study_page_says_attaching_asks_for_the_second_factor(settings, client_as, org_a, case, loose):
    from tests.accounts.conftest import enrol, stale_second_factor_client, totp_code

    settings.LIGHTBOX_MFA_ENFORCED = True
    never = member(org_a, Role.CLINICIAN, email="never@alpha.example")  # no authenticator (not required)
    page = client_as(never).get(loose.get_absolute_url()).content.decode()
    assert 'data-testid="attach-second-factor"' in page
    assert "Attaching asks for your second factor: you first set one up" in page
    stale, _device = stale_second_factor_client(member(org_a, Role.CLINICIAN, email="stale@alpha.example"))
    page = stale.get(loose.get_absolute_url()).content.decode()
    assert ASKS in page and "you first set one up" not in page
    fresh_user = member(org_a, Role.CLINICIAN, email="fresh@alpha.example")
    fresh = client_as(fresh_user)
    verified = fresh.post(reverse("accounts:mfa_verify"), {"code": totp_code(enrol(fresh_user)), "next": "/"})
    assert verified.status_code == 302
    page = fresh.get(loose.get_absolute_url()).content.decode()
    assert 'data-testid="attach-form"' in page and 'data-testid="attach-second-factor"' not in page
    settings.LIGHTBOX_MFA_ENFORCED = False  # no step-up at all: nothing said
    assert 'data-testid="attach-second-factor"' not in client_as(never).get(loose.get_absolute_url()).content.decode()


def test_without_a_second_factor_the_attach_explains_the_enrolment_and_comes_back(settings, client_as, org_a,
                                                                                 case, loose):
    """Someone who never set up a second factor is sent to set one up: that page says it is for
    attaching the study, and once it is set up (recovery codes saved) they are back on the
    confirmation with the case chosen."""
    from tests.accounts.conftest import pending_device, totp_code

    settings.LIGHTBOX_MFA_ENFORCED = True
    client = client_as(member(org_a, Role.CLINICIAN, email="never@alpha.example"))
    confirm = f"{_url(loose)}?case={case.public_id}"
    r = client.get(confirm)
    assert r["Location"].startswith(reverse("accounts:step_up"))
    r = client.get(r["Location"])
    assert r.status_code == 302 and r["Location"].startswith(reverse("accounts:mfa_setup"))
    setup = client.get(r["Location"])
    html = setup.content.decode()
    assert setup.status_code == 200 and 'data-testid="step-up-why"' in html
    assert WHY in html and "once it is set up, you go back to where you were" in html
    enrolled = client.post(reverse("accounts:mfa_setup"), {"code": totp_code(pending_device(client)), "next": confirm})
    assert enrolled["Location"].startswith(reverse("accounts:recovery_codes"))
    saved = client.post(enrolled["Location"], {"saved": "1", "next": confirm})
    assert saved.status_code == 302 and saved["Location"] == confirm
    page = client.get(confirm)
    assert page.status_code == 200 and 'data-testid="confirm-attach"' in page.content.decode()


def test_the_step_up_page_says_why_for_an_attach_and_not_for_other_pages(settings, org_a, case, loose):
    from tests.accounts.conftest import stale_second_factor_client

    settings.LIGHTBOX_MFA_ENFORCED = True
    client, _device = stale_second_factor_client(member(org_a, Role.CLINICIAN))
    confirm = f"{_url(loose)}?case={case.public_id}"
    html = client.get(client.get(confirm)["Location"]).content.decode()
    assert WHY in html and "Giving access, changing sign-in security" not in html
    # a next that is no page asking for a step-up (or no page at all): the general words
    for target in ("/cases/", "/no/such/page/"):
        html = client.get(reverse("accounts:step_up"), {"next": target}).content.decode()
        assert WHY not in html and "Giving access, changing sign-in security" in html


# --- the study page's case box: the newest cases, and a way to an older one ------------------

def _attach_box(page: str) -> str:
    return page.split('<select id="attach-case"', 1)[1].split("</select>", 1)[0]


def test_the_study_page_says_when_it_lists_only_the_newest_cases_and_takes_an_older_one_chosen(
        client_as, org_a, org_b, clinician, loose, monkeypatch):
    """As the upload page does (one note, the same words): the box lists the newest
    UPLOAD_CASE_CHOICES open cases and says so. An older case is reached from its own page:
    "Upload studies" chooses it on the upload page, whose "Studies in no case" then lead to the
    study's Attach with that case chosen (?case=, through the same upload_case_choices)."""
    from apps.imaging import selectors

    monkeypatch.setattr(selectors, "UPLOAD_CASE_CHOICES", 3)
    oldest = CaseFactory(organization=org_a, title="The oldest open case")
    CaseFactory.create_batch(4, organization=org_a)
    client = client_as(clinician)
    page = client.get(loose.get_absolute_url()).content.decode()
    assert _attach_box(page).count("<option value=") == 1 + 3 and "The oldest open case" not in page
    assert "The 3 newest open cases of 5 are listed. To attach it to another, open that case" in " ".join(page.split())
    assert 'aria-describedby="attach-case-help"' in page and 'id="attach-case-help"' in page

    upload = client.get(reverse("imaging:upload"), {"case": str(oldest.public_id)}).content.decode()
    link = f"{loose.get_absolute_url()}?case={oldest.public_id}#attach"
    assert f'href="{link}"' in upload
    assert "the case “The oldest open case” is chosen there" in upload
    chosen = client.get(link.split("#")[0]).content.decode()
    assert f'<option value="{oldest.public_id}" selected>The oldest open case</option>' in _attach_box(chosen)
    assert _attach_box(chosen).count(" selected") == 1

    foreign = CaseFactory(organization=org_b, title="Another hospital's case")
    for garbage in ("not-a-uuid", str(foreign.public_id)):
        html = client.get(loose.get_absolute_url(), {"case": garbage}).content.decode()
        assert " selected" not in _attach_box(html) and "Another hospital's case" not in html
    plain = client.get(reverse("imaging:upload"), {"case": str(foreign.public_id)}).content.decode()
    assert f'href="{loose.get_absolute_url()}#attach"' in plain  # chosen nothing: the links choose nothing


def test_the_study_page_lists_every_case_without_a_note_when_there_are_few(client_as, org_a, clinician, loose):
    CaseFactory.create_batch(3, organization=org_a)
    page = client_as(clinician).get(loose.get_absolute_url()).content.decode()
    assert _attach_box(page).count("<option value=") == 1 + 3
    assert 'data-testid="case-choices"' not in page and "aria-describedby" not in _attach_box(page)


# --- no case box while an ingest still adds to the study --------------------------------------

@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING])
@pytest.mark.parametrize("which", ["itself", "another_version"])
def test_the_study_page_offers_no_case_box_while_an_ingest_adds_to_it(client_as, org_a, clinician, case, loose,
                                                                        state, which):
    """The page says why instead of offering a form the POST would refuse; the POST still refuses
    (the page was read before the ingest began); the box is back once the ingest ends. Another
    version in no case being filled holds it too: it would be attached with it."""
    other = StudyFactory(organization=org_a, case=None, study_instance_uid=loose.study_instance_uid, version=2,
                         previous=loose, patient_id=PATIENT_ID)
    job = ingest_job_create(organization=org_a, source_path="/nonexistent", enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=state)
    job.studies.add(loose if which == "itself" else other)
    client = client_as(clinician)
    page = client.get(loose.get_absolute_url()).content.decode()
    assert 'data-testid="attach-busy"' in page and "still being added" in page
    assert 'data-testid="attach-form"' not in page and 'id="attach-case"' not in page
    r = client.post(_url(loose), {"case": str(case.public_id)}, follow=True)
    assert "still being added" in r.content.decode()
    assert Study.objects.get(pk=loose.pk).case_id is None

    IngestJob.objects.filter(pk=job.pk).update(state=JobState.DONE)
    page = client.get(loose.get_absolute_url()).content.decode()
    assert 'data-testid="attach-form"' in page and 'data-testid="attach-busy"' not in page


def test_an_ingest_of_another_study_does_not_hold_the_case_box(client_as, org_a, clinician, case, loose):
    job = ingest_job_create(organization=org_a, source_path="/nonexistent", enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    job.studies.add(StudyFactory(organization=org_a, case=None))
    page = client_as(clinician).get(loose.get_absolute_url()).content.decode()
    assert 'data-testid="attach-form"' in page and 'data-testid="attach-busy"' not in page


# --- tumor boards on the case: their participants see the study once attached ---------------

def _board(org, case, host, participants, title):
    from apps.cases.services import board_create

    return board_create(organization=org, by=host, host=host, title=title, review_days=7,
                        meeting_at=timezone.now() + timedelta(days=1), cases=[case], participants=participants)


def _board_items(html: str) -> list[str]:
    return [" ".join(li.split("</li>", 1)[0].split()) for li in html.split('data-testid="attach-board">')[1:]]


def test_the_confirmation_names_the_tumor_boards_whose_participants_then_see_the_study(
        client_as, org_a, clinician, case, loose):
    """Scheduled boards (their start gives each participant a grant on the case) and live ones
    (their grants on it live now), by title and meeting time, with how many people; not an ended
    board, a live one past its review window, one naming nobody its start would grant (its host
    only, a participant who left), nor a board on another case. A live board's grants are told by
    their board, not again as shares."""
    from apps.cases.services import board_end, board_start
    from apps.organizations.models import Membership
    from apps.sharing.models import Grant

    guest = member(org_a, Role.EXTERNAL_CONSULTANT, email="board.guest@alpha.example")
    a, b = member(org_a, Role.RADIOLOGIST), member(org_a, Role.EXTERNAL_CONSULTANT, email="live.guest@alpha.example")
    left = member(org_a, Role.EXTERNAL_CONSULTANT)
    _board(org_a, case, clinician, [guest], "Thoracic board")
    live = _board(org_a, case, clinician, [a, b], "Live board")
    board_start(board=live, by=clinician)
    ended = _board(org_a, case, clinician, [guest], "Ended board")
    board_start(board=ended, by=clinician)
    board_end(board=ended, by=clinician)
    lapsed = _board(org_a, case, clinician, [guest], "Lapsed board")
    board_start(board=lapsed, by=clinician)
    Grant.objects.filter(board_sessions=lapsed).update(expires_at=timezone.now() - timedelta(minutes=1))
    _board(org_a, case, clinician, [], "Host only board")
    _board(org_a, case, clinician, [left], "Left board")
    Membership.objects.filter(user=left).update(is_active=False)
    _board(org_a, CaseFactory(organization=org_a), clinician, [guest], "Other case board")

    html = client_as(clinician).get(_url(loose), {"case": str(case.public_id)}).content.decode()
    items = {item.split(" · ")[0]: item for item in _board_items(html)}
    assert set(items) == {"Thoracic board", "Live board"}, items
    scheduled, running = items["Thoracic board"], items["Live board"]
    assert scheduled.startswith("Thoracic board · <time datetime=")
    assert scheduled.endswith("scheduled: 1 participant will see the case once it starts")
    assert running.startswith("Live board · <time datetime=") and "live: 2 participants see the case until" in running
    assert 'data-testid="attach-reaches"' not in html and "live.guest@alpha.example" not in html
    assert 'data-testid="attach-reaches-nobody"' not in html


def test_the_boards_listed_are_whom_the_policy_then_shows_the_study(client_as, org_a, clinician, case, loose):
    """What the confirmation tells is what happens: the scheduled board's participant sees the
    attached study once it starts; an ended board's participant does not."""
    from apps.cases.services import board_end, board_start

    guest = member(org_a, Role.EXTERNAL_CONSULTANT)
    former = member(org_a, Role.EXTERNAL_CONSULTANT)
    ended = _board(org_a, case, clinician, [former], "Ended board")
    board_start(board=ended, by=clinician)
    board_end(board=ended, by=clinician)
    scheduled = _board(org_a, case, clinician, [guest], "Thoracic board")
    html = client_as(clinician).get(_url(loose), {"case": str(case.public_id)}).content.decode()
    assert [i.split(" · ")[0] for i in _board_items(html)] == ["Thoracic board"]
    assert client_as(clinician).post(_url(loose), {"case": str(case.public_id)}).status_code == 302
    assert client_as(guest).get(loose.get_absolute_url()).status_code == 404
    board_start(board=scheduled, by=clinician)
    assert client_as(guest).get(loose.get_absolute_url()).status_code == 200
    assert client_as(former).get(loose.get_absolute_url()).status_code == 404
