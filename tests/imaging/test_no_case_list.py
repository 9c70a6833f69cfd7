"""The upload page's "Studies in no case": the organization's studies uploaded with "No case
(attach later)", whoever uploaded them, so that a colleague (a radiologist, another clinician)
finds them and attaches them from the study page's Attach to a case. Only the organization's own
(tenant-scoped), only those in no case, a page at a time, in the same queries for few as for many;
the page's decisions read the user's memberships once (tests/imaging/test_page_queries.py)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.urls import reverse

from apps.imaging import views
from apps.organizations.models import Role
from apps.sharing import policy
from tests.factories import CaseFactory, IngestJobFactory, MembershipFactory, StudyFactory, member, working_in
from tests.pages import first_and_last_of_seven, queries_and_html

pytestmark = pytest.mark.django_db

URL = reverse("imaging:upload")
ROW = 'data-testid="no-case-study"'


def in_no_case(org, by, **fields):
    """A study ``by`` uploaded into ``org`` with "No case (attach later)"."""
    job = IngestJobFactory(organization=org, created_by=by)
    fields.setdefault("total_bytes", 3 * 1024 * 1024)
    study = StudyFactory(organization=org, case=None, created_by_job=job, **fields)
    job.studies.add(study)
    return study


def no_case_section(html: str) -> str:
    return html.split('id="no-case-heading"', 1)[1].split("</section>", 1)[0]


def test_a_colleague_finds_a_study_someone_else_uploaded_in_no_case_and_its_attach_link(org_a, clinician_a,
                                                                                         client_as):
    study = in_no_case(org_a, clinician_a, study_description="Outside CT abdomen", modalities="CT,PT",
                       patient_name="Doe^Jane", patient_id="MRN-4411", study_date=date(2026, 3, 14))
    radiologist = member(org_a, Role.RADIOLOGIST)
    _n, html = queries_and_html(client_as(radiologist), URL)
    section = " ".join(no_case_section(html).split())
    assert section.count(ROW) == 1
    assert f'href="{study.get_absolute_url()}#attach">Outside CT abdomen</a>' in section
    assert '<time datetime="2026-03-14">' in section and "CT, PT" in section and "3.0 MB" in section
    assert f"Uploaded by {clinician_a.display_name}" in section
    # staff of the organization see who the patient is (VIEW_PATIENT_IDENTITY), as on the study page
    assert "Patient: Doe, Jane · ID MRN-4411" in section
    # the link leads to the study page's Attach to a case, where the colleague may attach it
    detail = client_as(radiologist).get(study.get_absolute_url()).content.decode()
    assert 'id="attach"' in detail


def test_the_uploader_unknown_is_said(org_a, clinician_a, client_as):
    study = StudyFactory(organization=org_a, case=None, created_by_job=None)
    _n, html = queries_and_html(client_as(clinician_a), URL)
    section = no_case_section(html)
    assert f'{study.get_absolute_url()}#attach"' in section and "Uploaded by an unknown user" in section


def test_patient_identity_is_left_out_where_the_policy_does_not_allow_it(org_a, clinician_a, client_as, monkeypatch):
    in_no_case(org_a, clinician_a, patient_name="Doe^Jane", patient_id="MRN-4411")
    without = policy.ROLE_ACTIONS[Role.CLINICIAN] - {policy.Action.VIEW_PATIENT_IDENTITY}
    monkeypatch.setitem(policy.ROLE_ACTIONS, Role.CLINICIAN, without)
    _n, html = queries_and_html(client_as(clinician_a), URL)
    section = no_case_section(html)
    assert section.count(ROW) == 1
    assert "MRN-4411" not in section and "Doe" not in section and 'data-testid="no-case-patient"' not in section


def test_another_organizations_studies_and_attached_studies_never_show(org_a, org_b, clinician_a, client_as):
    mine = in_no_case(org_a, clinician_a, study_description="Ours, waiting")
    in_no_case(org_b, member(org_b, Role.CLINICIAN), study_description="Beta study, waiting")
    attached = in_no_case(org_a, clinician_a, study_description="Attached since")
    attached.case = CaseFactory(organization=org_a)
    attached.save()
    StudyFactory(organization=org_a, study_description="Uploaded into a case")
    # a radiologist of both organizations, working in Alpha: Beta's study is not on Alpha's page
    both = member(org_a, Role.RADIOLOGIST)
    MembershipFactory(user=both, organization=org_b, role=Role.RADIOLOGIST)
    for who in (both, member(org_a, Role.RADIOLOGIST)):
        client = client_as(who)
        working_in(client, org_a)
        _n, html = queries_and_html(client, URL)
        section = no_case_section(html)
        assert section.count(ROW) == 1 and mine.get_absolute_url() in section
        assert "Beta study" not in section and attached.get_absolute_url() not in section
        assert "Uploaded into a case" not in section
    # working in Beta, the same person sees Beta's and not Alpha's
    client = client_as(both)
    working_in(client, org_b)
    _n, html = queries_and_html(client, URL)
    section = no_case_section(html)
    assert section.count(ROW) == 1 and "Beta study, waiting" in section and "Ours, waiting" not in section


def test_a_study_is_listed_once_at_its_newest_version_in_no_case(org_a, clinician_a, client_as):
    first = in_no_case(org_a, clinician_a, study_description="Twice sent")
    second = in_no_case(org_a, clinician_a, study_description="Twice sent",
                        study_instance_uid=first.study_instance_uid, version=2, previous=first)
    _n, html = queries_and_html(client_as(clinician_a), URL)
    section = no_case_section(html)
    assert section.count(ROW) == 1
    assert second.get_absolute_url() in section and first.get_absolute_url() not in section
    assert "version 2" in section


def test_an_older_version_left_in_no_case_is_listed_when_the_newest_is_in_a_case(org_a, clinician_a, client_as):
    """Its page offers to attach it (it is in no case), so the list leads there."""
    first = in_no_case(org_a, clinician_a, study_description="Split versions")
    StudyFactory(organization=org_a, case=CaseFactory(organization=org_a), study_description="Split versions",
                 study_instance_uid=first.study_instance_uid, version=2, previous=first)
    _n, html = queries_and_html(client_as(clinician_a), URL)
    section = no_case_section(html)
    assert section.count(ROW) == 1 and f'{first.get_absolute_url()}#attach"' in section


def test_nothing_in_no_case_says_so(org_a, clinician_a, client_as):
    StudyFactory(organization=org_a)  # in a case
    _n, html = queries_and_html(client_as(clinician_a), URL)
    section = no_case_section(html)
    assert ROW not in section and "No study of your organization is waiting for a case." in section


@pytest.mark.parametrize("role", [Role.ORG_ADMIN, Role.EXTERNAL_CONSULTANT])
def test_a_role_that_may_not_upload_gets_no_page(org_a, clinician_a, client_as, role):
    in_no_case(org_a, clinician_a, study_description="Outside CT abdomen")
    response = client_as(member(org_a, role)).get(URL)
    assert response.status_code == 403 and b"Outside CT abdomen" not in response.content


def test_the_studies_in_no_case_come_a_page_at_a_time_newest_first_in_the_same_queries(org_a, clinician_a,
                                                                                      client_as, monkeypatch):
    monkeypatch.setattr(views, "NO_CASE_PAGE_SIZE", 3)
    client = client_as(member(org_a, Role.RADIOLOGIST))
    uploaders = [clinician_a, member(org_a, Role.COORDINATOR), member(org_a, Role.RADIOLOGIST)]
    for i in range(2):
        in_no_case(org_a, uploaders[i % 3], study_description=f"Waiting study {i}")
    few, _html = queries_and_html(client, URL)
    for i in range(2, 7):
        in_no_case(org_a, uploaders[i % 3], study_description=f"Waiting study {i}")
    many, first, last = first_and_last_of_seven(client, URL, row=ROW, param="no_case", anchor="#no-case-heading")
    assert many == few, (few, many)
    assert 'href="?no_case=2#no-case-heading" rel="prev"' in last
    assert re.findall(r"Waiting study (\d)", first) == ["6", "5", "4"]
    assert re.findall(r"Waiting study (\d)", last) == ["0"]


def test_the_upload_page_in_spanish(org_a, clinician_a, client_as):
    in_no_case(org_a, clinician_a, study_description="", patient_name="Doe^Jane")
    client = client_as(member(org_a, Role.RADIOLOGIST))
    response = client.get(URL, HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="es"' in html
    section = no_case_section(html)
    assert section.count(ROW) == 1 and "Estudio sin título" in section and "Paciente" in section
