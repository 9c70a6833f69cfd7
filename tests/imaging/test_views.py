from __future__ import annotations

import pytest

from apps.organizations.models import Role
from tests.factories import GrantFactory, StudyFactory, member

pytestmark = pytest.mark.django_db


def test_study_page_shows_metadata_series_and_state(client_as, org_a, ingested):
    rad = member(org_a, Role.RADIOLOGIST)
    r = client_as(rad).get(ingested.get_absolute_url())
    assert r.status_code == 200
    html = r.content.decode()
    assert "Synthetic CT chest" in html and 'data-testid="study-state">Ready<' in html
    assert html.count('data-testid="series"') == 1
    assert html.count('data-testid="report-line"') == 6


@pytest.mark.parametrize(("who", "status"), [("radiologist", 200), ("coordinator", 200), ("consultant", 404),
                                             ("consultant_with_grant", 200), ("other_org", 404)])
def test_study_page_access(client_as, org_a, org_b, who, status):
    study = StudyFactory(organization=org_a)
    if who == "other_org":
        user = member(org_b, Role.RADIOLOGIST)
    elif who.startswith("consultant"):
        user = member(org_a, Role.EXTERNAL_CONSULTANT)
        if who == "consultant_with_grant":
            GrantFactory(organization=org_a, case=study.case, grantee=user)
    else:
        user = member(org_a, who)
    assert client_as(user).get(study.get_absolute_url()).status_code == status


def test_upload_page_for_uploaders_only(client_as, org_a):
    rad = member(org_a, Role.CLINICIAN)
    r = client_as(rad).get("/studies/upload/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "vendor/tus-js-client/tus.min.js" in html and 'href="/studies/upload/"' in html
    assert client_as(member(org_a, Role.ORG_ADMIN)).get("/studies/upload/").status_code == 403
    assert client_as(member(org_a, Role.PATIENT)).get("/studies/upload/").status_code in (302, 403)
