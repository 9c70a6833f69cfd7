"""A patient-education share gives the patient portal's education copy and nothing else, whoever
holds it: an account of no organization that accepted it by e-mail, a patient member, staff of
another organization, an anonymous link's holder. Its use case decides (``policy.USE_CASE_GIVES``),
not its permissions ('view' and 'download_preview', as the template names them): no case page
(its notes, its clinical question), no study page, no viewer, no preview, no original, no request
for the original. An account of no organization holding only such shares is kept to the portal
by the access gate, as a patient is, and told so on the refusal page.

The security review's case: the patient who accepted a patient-education share sent to their
address (an account of no organization, not held to the portal by the gate) read every note of
the case and its clinical question on /cases/<case>/, the study page and the shared case."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.cases.models import Case, CaseNote
from apps.imaging.models import Study
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.policy import Action
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import GrantFactory, StudyFactory, UserFactory, member, open_anonymous_link
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db

NOTE = "NOTE-SECRET the board says palliative"
QUESTION = "QUESTION-SECRET rule out metastasis"
HOLDERS = ("no_organization", "patient_member", "clinician_elsewhere")


def _download_url(study, rendition: str = "education") -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={rendition}"


def _holder(kind: str, org_a, org_b, patient):
    """The account of ``patient`` (a cases.Patient), linked to them as their accepted patient
    invitation links it: a patient-education share gives no other account anything."""
    if kind == "no_organization":
        user = UserFactory(email="new.patient@example.org")
    elif kind == "patient_member":
        user = member(org_a, Role.PATIENT, email="pat.member@alpha.example")
    else:
        user = member(org_b, Role.CLINICIAN, email="doctor@beta.example")
    link_patient_account(user, patient)
    return user


def _share_by_email(case, sharer, holder):
    return services.share_create(case=case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                                 recipient_kind=RecipientKind.EMAIL, grantee_email=holder.email)


def _in_a_day():
    return timezone.now() + timedelta(days=1)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def secret_case(edu_case, sharer):
    Case.objects.filter(pk=edu_case.pk).update(referring_question=QUESTION)
    CaseNote.objects.create(organization=edu_case.organization, case=edu_case, author=sharer, body=NOTE)
    edu_case.refresh_from_db()
    return edu_case


@pytest.mark.parametrize("kind", HOLDERS)
def test_a_patient_education_share_shows_no_case_notes_or_study_pages(org_a, org_b, secret_case, edu_study, sharer,
                                                                     kind):
    holder = _holder(kind, org_a, org_b, secret_case.patient)
    grant, _link, raw = _share_by_email(secret_case, sharer, holder)
    client = _signed_in(holder)
    opened = client.get(reverse("sharing:link_open", kwargs={"token": raw}))
    assert opened.status_code == 302 and opened["Location"] == reverse("education:portal")
    grant.refresh_from_db()
    assert grant.grantee == holder
    # what the share is for: the portal lists it, the education copy downloads
    portal = client.get(reverse("education:portal")).content.decode()
    assert "CT chest (education test)" in portal and 'data-testid="education-download"' in portal
    assert NOTE not in portal and QUESTION not in portal
    assert client.get(_download_url(edu_study)).status_code == 200
    # and nothing else
    instance = edu_study.instances.first()
    for url in (secret_case.get_absolute_url(), edu_study.get_absolute_url(),
                reverse("sharing:shared_case", kwargs={"case_id": secret_case.public_id}),
                reverse("viewer:viewer", kwargs={"study_id": edu_study.public_id}),
                reverse("viewer:frame", kwargs={"instance_id": instance.public_id}),
                reverse("renditions:case_download", kwargs={"case_id": secret_case.public_id}) + "?rendition=preview",
                _download_url(edu_study, "preview"), _download_url(edu_study, "original"),
                reverse("sharing:original_request_create", kwargs={"grant_id": grant.public_id})):
        response = client.get(url)
        assert response.status_code in (403, 404), (url, response.status_code)
        if not hasattr(response, "streaming_content"):
            body = response.content.decode()
            assert NOTE not in body and QUESTION not in body, url
    # no list shows the case or its study either
    assert not Case.objects.visible_to(holder).filter(pk=secret_case.pk).exists()
    assert not Study.objects.visible_to(holder).filter(pk=edu_study.pk).exists()
    assert not CaseNote.objects.visible_to(holder).exists()


@pytest.mark.parametrize("holder_kind", ("no_organization", "clinician_elsewhere", "link_holder"))
def test_the_policy_gives_a_patient_education_grant_the_education_copy_only(org_a, org_b, sharer, holder_kind):
    """Every action on the case and on its study, as the table says: the education copy's download
    is the one yes. A link holder too: the template sends a patient-education share to a person
    only (``share_create`` refuses an anonymous one), and a grant made otherwise gives its holder
    nothing: not the account linked to the case's patient (``policy.is_case_patients_account``)."""
    case_ = StudyFactory(organization=org_a, case__organization=org_a, state="ready").case
    study = case_.studies.get()
    if holder_kind == "link_holder":
        org_a.anonymous_links_enabled = True
        org_a.save()
        grant = services.grant_create(case=case_, grantee=None, permissions=["view", "download_preview"],
                                      renditions=["education"], use_case=UseCase.PATIENT_EDUCATION, by=sharer,
                                      expires_at=_in_a_day())
        link, _raw = services.share_link_create(grant=grant, by=sharer, anonymous=True)
        actor = policy.LinkHolder(link_ids=(link.pk,))
    else:
        actor = _holder(holder_kind, org_a, org_b, case_.patient)
        GrantFactory(organization=org_a, case=case_, grantee=actor, use_case=UseCase.PATIENT_EDUCATION,
                     permissions=["view", "download_preview", "download_original", "reshare"],
                     renditions=["education", "preview", "original"])
    for obj in (case_, study):
        allowed = {action for action in Action if policy.can(actor, action, obj)}
        allowed |= {f"download:{r}" for r in policy.allowed_renditions(actor, obj)}
        expected = set() if holder_kind == "link_holder" else {"download:education"}
        assert allowed == expected, (obj, allowed)
        assert policy.can(actor, Action.DOWNLOAD_PREVIEW, obj, rendition="education") == bool(expected)


def test_a_patient_education_share_is_never_an_anonymous_link(edu_case, sharer):
    edu_case.organization.anonymous_links_enabled = True
    edu_case.organization.save()
    with pytest.raises(ValidationError):
        services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                              recipient_kind=RecipientKind.ANONYMOUS)


def test_a_link_holder_of_a_patient_education_grant_sees_no_case(org_a, edu_case, edu_study, sharer):
    org_a.anonymous_links_enabled = True
    org_a.save()
    grant = services.grant_create(case=edu_case, grantee=None, permissions=["view", "download_preview"],
                                  renditions=["education"], use_case=UseCase.PATIENT_EDUCATION, by=sharer,
                                  expires_at=_in_a_day())
    _link, raw = services.share_link_create(grant=grant, by=sharer, anonymous=True)
    client = Client()
    open_anonymous_link(client, raw)
    for url in (reverse("sharing:shared_case", kwargs={"case_id": edu_case.public_id}),
                reverse("viewer:viewer", kwargs={"study_id": edu_study.public_id}),
                _download_url(edu_study, "preview")):
        assert client.get(url).status_code in (403, 404), url


def test_an_account_holding_only_patient_education_shares_is_kept_to_the_portal(edu_case, edu_study, sharer):
    """Not a 403 meant for hospital staff ('your role in this organization... ask your
    administrator', a dashboard link): home leads to the portal, any other page says the copies
    are in the portal and leads back there, and the navigation is the patient's."""
    holder = UserFactory(email="new.patient@example.org", language="en")
    link_patient_account(holder, edu_case.patient, case=edu_case)
    _grant, _link, raw = _share_by_email(edu_case, sharer, holder)
    client = _signed_in(holder)
    assert client.get(reverse("sharing:link_open", kwargs={"token": raw}))["Location"] == reverse("education:portal")
    home = client.get("/")
    assert home.status_code == 302 and home["Location"] == reverse("education:portal")
    for url in (reverse("cases:case_list"), reverse("sharing:shared_with_me"),
                reverse("cases:case_detail", kwargs={"case_id": edu_case.public_id})):
        refused = client.get(url)
        assert refused.status_code == 403, url
        html = refused.content.decode()
        assert 'data-testid="back-to-portal"' in html and "Your role in this organization" not in html, url
    portal = client.get(reverse("education:portal")).content.decode()
    nav = portal.split('class="main-nav"', 1)[1].split("</nav>", 1)[0]
    assert reverse("education:portal") in nav and reverse("cases:case_list") not in nav


def test_an_account_of_no_organization_with_an_education_share_is_that_organizations_patient(edu_case, sharer):
    """Found by review: an account of no organization that accepted a patient-education share and
    was later sent another share was given that share's case page (a second opinion: its viewer
    and originals). It is the organization's patient (``policy._downloads_as_patient``): another
    share to it is refused, and one made before is given the education copy only."""
    from datetime import timedelta

    from django.core.exceptions import ValidationError
    from django.utils import timezone

    holder = UserFactory(email="reader@example.org")
    link_patient_account(holder, edu_case.patient, case=edu_case)
    services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=holder)
    with pytest.raises(ValidationError) as refused:
        services.share_create(case=edu_case, by=sharer, use_case=UseCase.CUSTOM,
                              recipient_kind=RecipientKind.USER, grantee=holder)
    assert refused.value.code == "recipient_email"
    services.grant_create(case=edu_case, grantee=holder, permissions=["view", "download_original"], by=sharer,
                          use_case=UseCase.SECOND_OPINION, expires_at=timezone.now() + timedelta(hours=2))
    client = _signed_in(holder)
    # the organization's patient is kept to the portal (apps.accounts.middleware, as the policy
    # gives it nothing else): "Shared with me" is refused on the patient's page, back to the portal
    shared_with_me = client.get(reverse("sharing:shared_with_me"))
    assert shared_with_me.status_code == 403 and 'data-testid="back-to-portal"' in shared_with_me.content.decode()
    assert client.get(reverse("sharing:shared_case", kwargs={"case_id": edu_case.public_id})).status_code in (403, 404)
    assert client.get(reverse("education:portal")).status_code == 200


def test_staff_elsewhere_find_their_patient_education_share_on_the_portal(org_b, edu_case, edu_study, sharer):
    """A clinician of another organization sent a patient-education share: the portal (not their
    dashboard) lists it, and "Shared with me" leads there, not to a case page it does not give."""
    clinician = member(org_b, Role.CLINICIAN, email="doctor@beta.example")
    link_patient_account(clinician, edu_case.patient, case=edu_case)
    services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                          recipient_kind=RecipientKind.USER, grantee=clinician)
    client = _signed_in(clinician)
    portal = client.get(reverse("education:portal"))
    assert portal.status_code == 200 and "CT chest (education test)" in portal.content.decode()
    received = client.get(reverse("sharing:shared_with_me")).content.decode()
    assert f'href="{reverse("education:portal")}" data-testid="on-portal"' in received
    assert reverse("sharing:shared_case", kwargs={"case_id": edu_case.public_id}) not in received
    assert edu_case.title not in client.get(reverse("cases:case_list")).content.decode()


def test_no_original_is_requested_under_a_patient_education_share(edu_case, patient, sharer):
    grant, _link, _raw = services.share_create(case=edu_case, by=sharer, use_case=UseCase.PATIENT_EDUCATION,
                                               recipient_kind=RecipientKind.USER, grantee=patient)
    assert policy.original_request_refusal(patient, grant) is policy.OriginalRefusal.NOT_OFFERED
    with pytest.raises(PermissionDenied):
        services.original_request_create(grant=grant, by=patient, reason="I want the full images please")
