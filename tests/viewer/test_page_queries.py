"""The viewer's page reads the signed-in user's memberships once a request: the middleware's
reading (``request.my_memberships``), which the page's decisions (see the case, see the images,
the diagnostic original) and its navigation share through ``policy.request_facts`` (each read
them again: five readings in all, and a reader's grants three times). Its queries do not grow with the
study's series (tests/test_page_queries.py measures 3 and 30 series, and long series)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.imaging.test_page_queries import page_reader, study_with_series
from tests.pages import assert_read_once, page_queries

pytestmark = pytest.mark.django_db


def _url(study) -> str:
    return reverse("viewer:viewer", args=[study.public_id])


@pytest.mark.parametrize(("who", "status"), [("staff", 200), ("consultant", 200), ("other_org_reader", 200),
                                             ("patient", 403)])
def test_the_viewer_reads_the_users_memberships_once(org_a, org_b, client_as, who, status):
    """A patient is kept to the patient portal (apps.accounts.middleware), and an education
    share gives no viewer's frames anyway: refused, on the same one reading."""
    study = study_with_series(org_a)
    got, queries = page_queries(client_as(page_reader(who, org_a, org_b, study)), _url(study))
    assert got == status
    assert_read_once(queries, reader=who in ("consultant", "other_org_reader"))


@pytest.mark.parametrize("who", ["staff", "consultant"])
def test_the_viewer_costs_the_same_for_one_series_as_for_five(org_a, org_b, client_as, who):
    counts = {}
    for n in (1, 5):
        study = study_with_series(org_a, series=n)
        status, queries = page_queries(client_as(page_reader(who, org_a, org_b, study)), _url(study))
        assert status == 200
        counts[n] = len(queries)
    assert counts[1] == counts[5], counts
