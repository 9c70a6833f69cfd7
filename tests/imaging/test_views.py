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


@pytest.mark.parametrize(("stored", "shown"), [
    ("Fictional^Pat", "Fictional, Pat"),
    ("Doe^John^Q^Dr^Jr", "Doe, Dr John Q Jr"),
    ("Yamada^Tarou=山田^太郎", "Yamada, Tarou"),
    ("Mononym", "Mononym"),
    ("^Given", "Given"),
    ("A^B\\C^D", "A^B\\C^D"),  # several names: as stored
])
def test_the_study_page_shows_the_patients_name_as_people_read_it(client_as, org_a, stored, shown):
    """DICOM keeps a name as Family^Given^Middle^Prefix^Suffix; the page said 'Fictional^Pat'."""
    study = StudyFactory(organization=org_a, patient_name=stored)
    html = client_as(member(org_a, Role.RADIOLOGIST)).get(study.get_absolute_url()).content.decode()
    assert f"<dd>{shown} · " in html.replace("&#x27;", "'")
