"""The patient portal end to end: a patient opens their patient-education link, lands on the
portal, sees the share and downloads the education copy through the one download endpoint and
the policy; nothing else is reachable and nothing of another patient shows."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.renditions.models import Kind, Rendition
from apps.sharing import services
from apps.sharing.models import Grant
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import TEST_PASSWORD, MembershipFactory, StudyFactory, UserFactory, member
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _grant_made_before(case, sharer, grantee, *, use_case: str = UseCase.SECOND_OPINION) -> Grant:
    """A share of another template than patient-education to a patient, as one made before the
    share form refused them (``services.share_recipient_check``), with its template's permissions:
    the policy still gives its patient the education copy only."""
    from apps.sharing.usecases import template_for

    template = template_for(case.organization_id, use_case)
    return services.grant_create(case=case, grantee=grantee, permissions=template.permissions, by=sharer,
                                 renditions=template.renditions, use_case=use_case,
                                 expires_at=timezone.now() + timedelta(hours=template.default_hours))


def _download_url(study, rendition: str = "education") -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={rendition}"


def _zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_patient_opens_link_and_lands_on_portal_with_the_share(edu_study, edu_share, patient):
    grant, _link, raw = edu_share
    client = _client(patient)
    response = client.get(reverse("sharing:link_open", kwargs={"token": raw}))
    assert response.status_code == 302 and response["Location"] == reverse("education:portal")
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "CT chest (education test)" in html
    assert "Patient education - low resolution, not for diagnosis" in html
    assert "Casey Sharer" in html
    assert _download_url(edu_study).replace("&", "&amp;") in html
    assert 'data-testid="portal-empty"' not in html
    grant.refresh_from_db()
    assert grant.open_count == 1  # the link's opening; the portal shown right after is the same opening
    assert AuditEvent.objects.filter(action="grant.opened", target_id=str(grant.public_id)).count() == 1


def test_portal_listing_is_recorded_once_per_session(edu_study, edu_share, patient):
    grant, _link, _raw = edu_share
    client = _client(patient)
    assert client.get(reverse("education:portal")).status_code == 200
    assert client.get(reverse("education:portal")).status_code == 200
    grant.refresh_from_db()
    assert grant.open_count == 1 and grant.first_opened_at is not None


def test_download_of_the_education_copy_is_counted_and_recorded(edu_study, edu_share, patient):
    grant, _link, _raw = edu_share
    client = _client(patient)
    response = client.get(_download_url(edu_study))
    assert response.status_code == 200
    names = _zip(response).namelist()
    assert any("/ED" in n and n.endswith(".jpg") for n in names), names  # pictures a phone opens
    assert not any("/IM" in n or "/PV" in n or n.endswith(".dcm") for n in names)
    grant.refresh_from_db()
    assert grant.download_count == 1
    assert AuditEvent.objects.filter(action="grant.download", target_id=str(grant.public_id)).exists()
    assert AuditEvent.objects.filter(action="download.completed", details__rendition="education").exists()
    # the limit (2) counts portal downloads like any other; then the portal says so
    assert client.get(_download_url(edu_study)).status_code == 200
    assert client.get(_download_url(edu_study)).status_code == 403
    assert 'data-testid="education-limit"' in client.get(reverse("education:portal")).content.decode()


@pytest.mark.parametrize("rendition", ["original", "lossless", "preview"])
def test_patient_never_gets_another_rendition(edu_study, edu_share, patient, rendition):
    grant, _link, _raw = edu_share
    response = _client(patient).get(_download_url(edu_study, rendition))
    assert response.status_code == 403
    grant.refresh_from_db()
    assert grant.download_count == 0
    assert AuditEvent.objects.filter(action="access.denied", outcome="denied").exists()


def test_patient_gets_no_original_even_on_a_grant_naming_it(edu_study, edu_case, sharer, patient):
    """A second-opinion share (originals) to a patient account still gives the patient no original:
    the policy's patient rule, not the template, decides."""
    grant = _grant_made_before(edu_case, sharer, patient)  # the share form refuses one now
    assert "download_original" in grant.permissions
    assert _client(patient).get(_download_url(edu_study, "original")).status_code == 403


def test_other_patient_and_other_org_see_nothing(org_a, org_b, edu_study, edu_share):
    for user in (member(org_a, Role.PATIENT, email="other@alpha.example"),
                 member(org_b, Role.PATIENT, email="pat@beta.example")):
        client = _client(user)
        html = client.get(reverse("education:portal")).content.decode()
        assert 'data-testid="portal-empty"' in html and "CT chest" not in html
        assert client.get(_download_url(edu_study)).status_code == 404


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_revoked_or_expired_share_is_gone(edu_study, edu_share, patient, sharer, how):
    grant, _link, raw = edu_share
    if how == "revoked":
        services.grants_revoke(grants=[grant], by=sharer, reason="test")
    else:
        Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = _client(patient)
    html = client.get(reverse("education:portal")).content.decode()
    assert 'data-testid="portal-empty"' in html and "CT chest" not in html
    assert client.get(_download_url(edu_study)).status_code == 404
    assert client.get(reverse("sharing:link_open", kwargs={"token": raw})).status_code == 410


def test_copy_not_ready_yet_says_it_is_being_prepared(org_a, edu_case, edu_share, patient):
    StudyFactory(organization=org_a, case=edu_case, state="ready", study_description="MR knee")
    html = _client(patient).get(reverse("education:portal")).content.decode()
    assert "MR knee" in html and 'data-testid="education-preparing"' in html
    assert 'data-testid="education-download"' not in html


def test_copy_pending_is_being_prepared(edu_study, edu_share, patient):
    Rendition.objects.filter(study=edu_study, kind=Kind.EDUCATION).update(status="pending")
    html = _client(patient).get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-preparing"' in html


def test_patient_still_refused_everything_else(edu_study, edu_share, patient):
    _grant, _link, raw = edu_share
    client = _client(patient)
    client.get(reverse("sharing:link_open", kwargs={"token": raw}))
    for url in (reverse("sharing:shared_case", kwargs={"case_id": edu_study.case.public_id}),
                reverse("cases:case_detail", kwargs={"case_id": edu_study.case.public_id}),
                reverse("viewer:viewer", kwargs={"study_id": edu_study.public_id}),
                reverse("imaging:study_detail", kwargs={"study_id": edu_study.public_id}),
                reverse("sharing:my_shares"), reverse("cases:case_list"),
                reverse("renditions:case_download", kwargs={"case_id": edu_study.case.public_id})):
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize(("language", "back"), [("en", "Back to your patient portal"),
                                                ("es", "Volver a su portal del paciente")])
def test_refused_page_leads_a_patient_back_to_the_portal(edu_study, edu_share, patient, language, back):
    """A patient refused a staff page (the viewer, the case) is told where their images are and
    led back to the portal, in their language; not the staff text ('your role... ask your
    administrator') and a link to a dashboard they do not have."""
    patient.language = language
    patient.save(update_fields=["language"])
    response = _client(patient).get(reverse("viewer:viewer", kwargs={"study_id": edu_study.public_id}))
    html = response.content.decode()
    assert response.status_code == 403
    assert f'href="{reverse("education:portal")}" data-testid="back-to-portal">{back}</a>' in html
    assert f'href="{reverse("dashboard")}"' not in html.split("<main", 1)[1]


def test_other_shares_to_a_patient_are_not_listed(edu_study, edu_case, sharer, patient):
    _grant_made_before(edu_case, sharer, patient, use_case=UseCase.TELEHEALTH)
    html = _client(patient).get(reverse("education:portal")).content.decode()
    assert 'data-testid="portal-empty"' in html


def test_staff_opening_a_link_still_lands_on_the_shared_case(edu_case, sharer, org_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="c@alpha.example")
    _grant, _link, raw = services.share_create(case=edu_case, by=sharer, use_case=UseCase.TELEHEALTH,
                                               recipient_kind=RecipientKind.USER, grantee=consultant)
    response = _client(consultant).get(reverse("sharing:link_open", kwargs={"token": raw}))
    assert response["Location"] == reverse("sharing:shared_case", kwargs={"case_id": edu_case.public_id})


def test_portal_in_spanish(edu_study, edu_share, patient):
    patient.language = "es"
    patient.save(update_fields=["language"])
    html = _client(patient).get(reverse("education:portal")).content.decode()
    assert "no apto para diagnóstico" in html
    assert "Descargar su copia" in html




@pytest.mark.parametrize("language", ["en", "es"])
def test_portal_dates_read_year_month_day(edu_study, edu_share, patient, language):
    """Dates on pages read year-month-day with a 24-hour clock in every language: the portal
    showed the expiry as 'Jan. 4, 2027, 8:40 p.m.' ('4 de enero de 2027 a las 20:40')."""
    from datetime import date

    grant, _link, _raw = edu_share
    expires = (timezone.now() + timedelta(days=3)).replace(hour=15, minute=7, second=0, microsecond=0)
    Grant.objects.filter(pk=grant.pk).update(expires_at=expires)
    type(edu_study).objects.filter(pk=edu_study.pk).update(study_date=date(2026, 3, 4))
    patient.language = language
    patient.save(update_fields=["language"])
    html = _client(patient).get(reverse("education:portal")).content.decode()
    assert f">{timezone.localtime(expires):%Y-%m-%d %H:%M}</time>" in html
    assert ">2026-03-04</time>" in html


@pytest.mark.parametrize("rendition", ["original", "lossless", "preview"])
def test_patient_of_another_organization_gets_no_other_rendition(org_b, edu_study, edu_case, sharer, rendition):
    """The middleware lets every patient-only account reach the download endpoint; the policy's
    patient rule must hold for them too when the grant comes from an organization they are not a
    member of (a share to the account of a patient of another organization)."""
    outsider_patient = member(org_b, Role.PATIENT, email="pat@beta.example")
    link_patient_account(outsider_patient, edu_case.patient, case=edu_case)  # the case's patient
    grant = _grant_made_before(edu_case, sharer, outsider_patient)  # the share form refuses one now
    assert "download_original" in grant.permissions
    assert _client(outsider_patient).get(_download_url(edu_study, rendition)).status_code == 403
    grant.refresh_from_db()
    assert grant.download_count == 0


def _sign_in_through_the_link(raw: str, email: str) -> tuple[Client, str]:
    """Open the link signed out, sign in from the page it shows; (client, where the link lands)."""
    client = Client()
    link = reverse("sharing:link_open", kwargs={"token": raw})
    to_sign_in = client.get(link)
    sign_in_url = f"{reverse('account_login')}?{urlencode({'next': link})}"
    assert to_sign_in.status_code == 200 and f'href="{sign_in_url}"' in to_sign_in.content.decode()
    signed_in = client.post(sign_in_url, {"login": email, "password": TEST_PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == link
    landed = client.get(link)
    assert landed.status_code == 302
    return client, landed["Location"]


def test_patient_invited_by_email_without_a_membership_lands_on_the_portal(edu_study, edu_case, sharer):
    """A patient-education share to an e-mail address, accepted by an account that is no
    organization's member yet (so not held to the patient portal by the access gate): it lands
    on the patient portal, where the share is listed and its education copy downloads, as for a
    patient account; not on the shared-case page."""
    recipient = UserFactory(email="new.patient@example.org")
    link_patient_account(recipient, edu_case.patient, case=edu_case)  # the case's patient
    grant, _link, raw = services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                                              recipient_kind=RecipientKind.EMAIL,
                                              grantee_email="New.Patient@example.org")
    client, landed = _sign_in_through_the_link(raw, "new.patient@example.org")
    assert landed == reverse("education:portal")
    grant.refresh_from_db()
    assert grant.grantee == recipient  # the e-mail share is bound to the account that accepted it
    html = client.get(landed).content.decode()
    assert "CT chest (education test)" in html and 'data-testid="portal-empty"' not in html
    assert _download_url(edu_study).replace("&", "&amp;") in html
    assert client.get(_download_url(edu_study)).status_code == 200
    # nothing more than the share gave: no other rendition, no membership made
    assert client.get(_download_url(edu_study, "original")).status_code == 403
    assert not recipient.memberships.exists()


def test_staff_sent_a_patient_education_share_by_email_land_on_the_portal(org_b, edu_study, edu_case, sharer):
    """Someone who works in an organization (here a clinician of another) sent a patient-education
    share lands on the portal too: the share gives no case page to land on (its use case gives
    the education copy only, whoever holds it), and the portal lists it for them."""
    clinician = member(org_b, Role.CLINICIAN, email="doctor@beta.example")
    link_patient_account(clinician, edu_case.patient, case=edu_case)  # the case's patient
    _grant, _link, raw = services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                                               recipient_kind=RecipientKind.EMAIL, grantee_email=clinician.email)
    client, landed = _sign_in_through_the_link(raw, clinician.email)
    assert landed == reverse("education:portal")
    assert "CT chest (education test)" in client.get(landed).content.decode()


def test_an_account_of_no_organization_sent_another_kind_of_share_lands_on_the_shared_case(edu_case, sharer):
    """Only a patient-education share leads to the portal (the portal lists nothing else)."""
    UserFactory(email="reader@example.org")
    _grant, _link, raw = services.share_create(case=edu_case, by=sharer, use_case=UseCase.CUSTOM,
                                               recipient_kind=RecipientKind.EMAIL, grantee_email="reader@example.org")
    landed = _sign_in_through_the_link(raw, "reader@example.org")[1]
    assert landed == reverse("sharing:shared_case", kwargs={"case_id": edu_case.public_id})


@pytest.mark.parametrize("recipient_kind", ["no_organization", "clinician_elsewhere"])
def test_a_patient_education_share_opens_no_viewer_whoever_holds_it(org_b, edu_study, edu_case, sharer,
                                                                       recipient_kind):
    """The share gives the education copy, never the viewer's frames of the originals nor the case
    page: not to an account of no organization that accepted it by e-mail, nor to staff of another
    organization it was sent to."""
    if recipient_kind == "no_organization":
        recipient = UserFactory(email="new.patient@example.org")
    else:
        recipient = member(org_b, Role.CLINICIAN, email="doctor@beta.example")
    link_patient_account(recipient, edu_case.patient, case=edu_case)  # the case's patient
    _grant, _link, raw = services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                                               recipient_kind=RecipientKind.EMAIL, grantee_email=recipient.email)
    client = _sign_in_through_the_link(raw, recipient.email)[0]
    instance = edu_study.instances.first()
    assert client.get(reverse("viewer:viewer", kwargs={"study_id": edu_study.public_id})).status_code in (403, 404)
    assert client.get(reverse("viewer:frame", kwargs={"instance_id": instance.public_id})).status_code in (403, 404)
    shared_case = client.get(reverse("sharing:shared_case", kwargs={"case_id": edu_case.public_id}))
    assert shared_case.status_code in (403, 404)
    assert reverse("viewer:viewer", kwargs={"study_id": edu_study.public_id}) not in shared_case.content.decode()
    assert client.get(_download_url(edu_study)).status_code == 200  # what the share is for


_REASONS = {"limit": "education-limit", "second_factor": "education-second-factor",
            "scope": "education-not-included", "permission": "education-not-included"}


@pytest.mark.parametrize("reason", list(_REASONS))
def test_the_portal_says_why_a_copy_cannot_be_downloaded(edu_study, edu_share, patient, reason):
    """The portal said "downloaded as many times as allowed" whenever the policy refused the
    download: also for a share that asks for a second factor not passed in this session, or whose
    scope leaves the education copy out. It says the policy's reason (``download_refusal``), and
    the download endpoint refuses in each case."""
    grant, _link, _raw = edu_share
    change = {"limit": {"download_count": 2}, "second_factor": {"mfa_required": True},
              "scope": {"renditions": ["preview"]}, "permission": {"permissions": ["view"]}}[reason]
    Grant.objects.filter(pk=grant.pk).update(**change)
    client = _client(patient)
    html = client.get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-download"' not in html
    shown = {testid for testid in set(_REASONS.values()) if f'data-testid="{testid}"' in html}
    assert shown == {_REASONS[reason]}
    # refused (a share needing a second factor does not show the study to this session at all)
    assert client.get(_download_url(edu_study)).status_code in (403, 404)


def test_a_copy_the_patient_may_download_has_no_refusal(edu_study, edu_share, patient):
    from apps.sharing import policy

    assert policy.download_refusal(patient, edu_study, rendition="education") is None
    html = _client(patient).get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-download"' in html
    assert not any(f'data-testid="{testid}"' in html for testid in _REASONS.values())


def test_the_second_factor_reason_leads_to_the_security_page(edu_study, edu_share, patient):
    grant, _link, _raw = edu_share
    Grant.objects.filter(pk=grant.pk).update(mfa_required=True)
    html = _client(patient).get(reverse("education:portal")).content.decode()
    assert 'data-testid="education-second-factor"' in html
    assert reverse("accounts:security") in html



@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ORG_ADMIN, Role.COORDINATOR, Role.EXTERNAL_CONSULTANT])
def test_a_member_who_is_a_patient_nowhere_is_sent_from_the_portal_to_their_dashboard(org_a, role):
    """Staff who typed /portal/ were shown 'Nothing has been shared with you yet' under 'Your
    patient portal', as if they were a patient still waiting for their scans."""
    client = _client(member(org_a, role))
    response = client.get(reverse("education:portal"))
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    html = client.get(response["Location"]).content.decode()
    assert "The patient portal is for patients. Here is your dashboard." in html
    assert 'data-testid="portal-empty"' not in html


def test_the_portal_stays_for_patients_and_for_accounts_of_no_organization(org_a, org_b, patient):
    assert _client(patient).get(reverse("education:portal")).status_code == 200
    # a patient here and staff elsewhere: the portal is still theirs
    MembershipFactory(user=patient, organization=org_b, role=Role.CLINICIAN)
    assert _client(patient).get(reverse("education:portal")).status_code == 200
    # an account of no organization (a patient-education share accepted by e-mail) keeps its portal
    assert _client(UserFactory()).get(reverse("education:portal")).status_code == 200
