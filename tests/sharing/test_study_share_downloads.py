"""What a share of one study of a case lets its holder download, as each page says it (QA: a
second-opinion share of one study said "You may download: nothing (view only)" on the shared case
while the study's original downloaded, and the case page listed the permissions it names).

The policy is right: a second-opinion share gives the original and the preview of what it covers,
the one study here (never the whole case's zip, nor the other studies). The pages now say the
policy's answer for the holder and each object, not the grant's permissions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.organizations.models import Role
from apps.sharing import policy
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.services import grant_create, share_create
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import StudyFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_study_share(case, owner, org_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    shared = StudyFactory(organization=org_a, case=case, study_description="CT chest Quillon")
    other = StudyFactory(organization=org_a, case=case, study_description="MR brain Vantrel")
    grant, _link, _raw = share_create(case=case, by=owner, use_case=UseCase.SECOND_OPINION,
                                      recipient_kind=RecipientKind.USER, grantee=consultant, studies=[shared])
    return grant, consultant, shared, other


def _dd(html: str, testid: str) -> str:
    return re.search(rf'data-testid="{testid}">(.*?)</dd>', html, re.S).group(1)


def test_the_policy_gives_the_shared_study_not_the_case_zip_nor_the_others(one_study_share, case):
    _grant, consultant, shared, other = one_study_share
    assert policy.can(consultant, Action.DOWNLOAD_ORIGINAL, shared, rendition="original")
    assert policy.can(consultant, Action.DOWNLOAD_PREVIEW, shared, rendition="preview")
    assert not policy.can(consultant, Action.DOWNLOAD_ORIGINAL, case, rendition="original")
    assert not policy.can(consultant, Action.VIEW_IMAGES, other)
    assert policy.allowed_renditions_each(consultant, [case, shared, other]) == [
        frozenset(), frozenset({"original", "preview"}), frozenset()]


def test_the_shared_case_says_what_the_study_may_be_downloaded_as(one_study_share, case, client_as):
    _grant, consultant, shared, other = one_study_share
    html = client_as(consultant).get(f"/sharing/cases/{case.public_id}/").content.decode()
    may = _dd(html, "renditions")
    assert "Original DICOM" in may and "Compressed preview" in may
    assert "nothing (view only)" not in may
    # no zip of the whole case (refused), the study's own downloads instead
    assert 'data-testid="case-downloads"' not in html
    assert f"/studies/{shared.public_id}/download/?rendition=original" in html
    assert f"/studies/{shared.public_id}/download/?rendition=preview" in html
    assert str(other.public_id) not in html


def test_the_case_page_says_what_the_share_gives(one_study_share, case, client_as):
    _grant, consultant, _shared, _other = one_study_share
    html = client_as(consultant).get(f"/cases/{case.public_id}/").content.decode()
    assert _dd(html, "my-access").startswith("View, Download preview, Download original ·")


def test_the_case_page_says_what_the_policy_gives_not_the_permissions(case, owner, org_a, client_as):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    StudyFactory(organization=org_a, case=case)
    grant = grant_create(case=case, grantee=consultant, by=owner, expires_at=timezone.now() + timedelta(hours=24),
                         permissions=["view", "download_preview", "download_original"], download_limit=1)
    Grant.objects.filter(pk=grant.pk).update(download_count=1)  # its one download used
    html = client_as(consultant).get(f"/cases/{case.public_id}/").content.decode()
    assert _dd(html, "my-access").startswith("View ·")
    shared = client_as(consultant).get(f"/sharing/cases/{case.public_id}/").content.decode()
    assert "nothing (view only)" in _dd(shared, "renditions")


def test_grant_gives_follows_the_rendition_scope(case, owner, org_a):
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    grant = grant_create(case=case, grantee=consultant, by=owner, expires_at=timezone.now() + timedelta(hours=24),
                         permissions=["view", "download_preview", "download_original"], renditions=["preview"])
    assert policy.grant_gives(consultant, [grant]) == [("view", "download_preview")]
