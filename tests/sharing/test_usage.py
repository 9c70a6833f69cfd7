"""Each grant keeps its usage (first opened, last opened, opens, downloads), so "expired unused"
and "downloaded again within 24 h" can be reported; download limits count a resumed download of
the same package once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.sharing import policy, selectors, services
from apps.sharing.models import Grant, GrantDownload
from apps.sharing.policy import Action
from tests.factories import StudyFactory, audit_write_fails

pytestmark = pytest.mark.django_db


@pytest.fixture
def grant(case, owner, consultant):
    return services.grant_create(case=case, grantee=consultant, permissions=["view", "download_preview"], by=owner,
                                 renditions=["preview"], download_limit=2,
                                 expires_at=timezone.now() + timedelta(hours=24))


def test_opens_are_kept_per_grant(grant, consultant, case):
    assert grant.first_opened_at is None and grant.open_count == 0
    client = Client()
    client.force_login(consultant)
    url = reverse("sharing:shared_case", kwargs={"case_id": case.public_id})
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200  # same session: one opening
    grant.refresh_from_db()
    first = grant.first_opened_at
    assert first is not None and grant.open_count == 1
    other_session = Client()
    other_session.force_login(consultant)
    other_session.get(url)
    grant.refresh_from_db()
    assert grant.open_count == 2 and grant.first_opened_at == first and grant.last_opened_at >= first


def test_download_limit_counts_a_resumed_download_once(grant, consultant, case):
    study = StudyFactory(organization=case.organization, case=case)
    assert policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="pkg-1") == grant
    # the same package resumed (a Range request): not counted again
    for _ in range(3):
        policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="pkg-1",
                                  resumed=True)
    grant.refresh_from_db()
    assert grant.download_count == 1
    assert GrantDownload.objects.get(grant=grant).resumes == 3
    # a fresh download of the same package counts (and is "downloaded again")
    policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="pkg-1")
    grant.refresh_from_db()
    assert grant.download_count == 2 and grant.over_download_limit
    # the limit is reached: a new download is refused (and recorded), a resume still finishes
    with pytest.raises(PermissionDenied):
        policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="pkg-2")
    assert policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="pkg-1",
                                     resumed=True) == grant
    assert not policy.can(consultant, Action.DOWNLOAD_PREVIEW, study)
    assert policy.can(consultant, Action.VIEW_IMAGES, study)  # viewing is not a download
    # never the original on a preview grant
    with pytest.raises(PermissionDenied):
        policy.download_authorize(actor=consultant, obj=study, rendition="original", package_key="pkg-3")
    # staff download on their role, uncounted
    assert policy.download_authorize(actor=case.created_by, obj=study, rendition="original", package_key="x") is None


def test_expired_unused_and_downloaded_again_within_24h_reports(grant, case, owner, consultant):
    study = StudyFactory(organization=case.organization, case=case)
    unused = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                   expires_at=timezone.now() + timedelta(hours=1))
    used = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                 expires_at=timezone.now() + timedelta(hours=1))
    services.grant_record_open(grant=used, actor=consultant)
    Grant.objects.filter(pk__in=[unused.pk, used.pk]).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert [g.pk for g in selectors.grants_expired_unused(organization_id=case.organization_id)] == [unused.pk]
    unused.refresh_from_db()
    used.refresh_from_db()
    assert unused.state() == "expired_unused" and used.state() == "expired_used"
    # two fresh downloads of one package 3 hours apart: reported; a resume alone is not
    policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="series-A")
    policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="series-A", resumed=True)
    assert selectors.grants_downloaded_again_within(organization_id=case.organization_id) == []
    GrantDownload.objects.filter(grant=grant).update(started_at=timezone.now() - timedelta(hours=3))
    policy.download_authorize(actor=consultant, obj=study, rendition="preview", package_key="series-A")
    report = selectors.grants_downloaded_again_within(organization_id=case.organization_id)
    assert len(report) == 1 and report[0]["grant_id"] == grant.pk and report[0]["downloads"] == 2
    assert 3 * 3600 - 60 <= report[0]["shortest_gap_seconds"] <= 3 * 3600 + 60
    # 30 hours apart is not "again within 24 h"
    GrantDownload.objects.filter(grant=grant).order_by("started_at").filter(
        pk=GrantDownload.objects.filter(grant=grant).order_by("started_at").first().pk
    ).update(started_at=timezone.now() - timedelta(hours=30))
    assert selectors.grants_downloaded_again_within(organization_id=case.organization_id) == []


def test_my_shares_shows_states_and_revokes_in_one_click(grant, owner, consultant, case):
    expired = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                    expires_at=timezone.now() + timedelta(hours=1))
    Grant.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client = Client()
    client.force_login(owner)
    page = client.get(reverse("sharing:my_shares")).content.decode()
    assert "state-active" in page and "state-expired_unused" in page
    response = client.post(reverse("sharing:grant_revoke", kwargs={"grant_id": grant.public_id}))
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert "state-revoked" in client.get(reverse("sharing:my_shares")).content.decode()
    # shared with me, for the recipient
    recipient = Client()
    recipient.force_login(consultant)
    assert case.title in recipient.get(reverse("sharing:shared_with_me")).content.decode()


def test_an_opening_is_never_counted_without_its_audit_event(grant, consultant, monkeypatch):
    """The grant's usage (first and last opened, openings) and its grant.opened event are one
    transaction: when the audit write fails, the opening is not counted either."""
    audit_write_fails(monkeypatch, services, "grant.opened")
    with pytest.raises(RuntimeError):
        services.grant_record_open(grant=grant, actor=consultant)
    grant.refresh_from_db()
    assert (grant.first_opened_at, grant.last_opened_at, grant.open_count) == (None, None, 0)
