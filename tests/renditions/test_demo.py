"""seed_demo: the demo studies get their renditions, and the study page shows the badges and
the download buttons."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.core.demo import seed
from apps.imaging.models import Study
from apps.renditions.models import Kind, Rendition, Status
from tests.factories import working_in

pytestmark = pytest.mark.django_db


def test_demo_studies_get_renditions_and_the_page_shows_them(django_capture_on_commit_callbacks, client_as):
    with django_capture_on_commit_callbacks(execute=True):
        seed()
    studies = list(Study.objects.filter(organization__slug="northwind").ready())
    assert studies
    for study in studies:
        kinds = {r.kind: r for r in Rendition.objects.filter(study=study)}
        assert set(kinds) == set(Kind), study
        assert kinds[Kind.PREVIEW].status == Status.READY
        assert kinds[Kind.ORIGINAL].status == Status.READY
    lossless = Rendition.objects.filter(study__in=studies, kind=Kind.LOSSLESS)
    assert lossless.filter(status__in=[Status.READY, Status.PARTIAL]).exists()
    radiologist = next(u for u in User.objects.filter(memberships__organization__slug="northwind",
                                                      memberships__role="radiologist"))
    client = client_as(radiologist)
    # a study whose lossless copy was made (the bone scan's cannot be: studies come in no set order,
    # and SQLite listed it first)
    shown = lossless.filter(status=Status.READY).order_by("study_id").first().study
    working_in(client, shown.organization)  # the demo has radiologists of two organizations
    page = client.get(shown.get_absolute_url()).content.decode()
    assert page.count('data-testid="rendition-badge"') >= 4
    for kind in ("preview", "lossless", "original"):
        assert f'data-testid="download-{kind}"' in page
