"""The study page's renditions table (found by QA): a rendition the study has but its viewer may
not download said a bare "Not offered": a consultant whose request for the original was approved
reads Download beside Lossless and Original but "Not offered" beside Preview and Education. That
is the policy's rule, not an inconsistency: downloads are named permissions of a share
(``usecases.RENDITION_PERMISSION``), the approval gives the original's download only, and the
share it was asked under gave the preview for viewing. The row now says why, as the policy
refuses it (``download_refusals``)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.sharing import services
from tests.factories import RenditionFactory, StudyFactory

pytestmark = pytest.mark.django_db

LOSSLESS_NOTE = "The lossless copy decodes to exactly the original pixels."


def _study(org, case, kinds):
    study = StudyFactory(organization=org, case=case)
    labels = {"preview": "preview_lossy", "education": "education_low_res", "lossless": "diagnostic_lossless"}
    for kind in kinds:
        RenditionFactory(organization=org, study=study, kind=kind, label=labels[kind], status="ready")
    return study


def _cell(html: str, kind: str) -> str:
    row = re.search(rf'data-testid="rendition-{kind}">(.*?)</tr>', html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", re.split(r"<td[^>]*>", row)[-1]).split())


def _footnote(html: str) -> str:
    return " ".join(re.search(r'data-testid="renditions-footnote">(.*?)</p>', html, re.S).group(1).split())


def _page(client, study) -> str:
    response = client.get(reverse("imaging:study_detail", args=[study.public_id]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_consultant_with_an_approved_original_reads_why_the_preview_is_not_offered(
        org_a, case, owner, consultant, client_as):
    study = _study(org_a, case, ["preview", "education", "lossless"])
    share = services.grant_create(case=case, by=owner, grantee=consultant, use_case="custom", permissions=["view"],
                                  renditions=["preview"], expires_at=timezone.now() + timedelta(hours=48))
    req = services.original_request_create(grant=share, by=consultant, reason="Need the thin-slice series.")
    services.original_request_decide(original_request=req, by=owner, approve=True, hours=24)

    html = _page(client_as(consultant), study)
    assert 'data-testid="download-lossless"' in html and 'data-testid="download-original"' in html
    why = "Not offered: what was shared with you does not include downloading it"
    assert _cell(html, "preview") == why
    assert _cell(html, "education") == why
    assert LOSSLESS_NOTE in _footnote(html)  # a lossless copy offered: the note is about it


def test_a_used_up_share_says_so(org_a, case, owner, consultant, client_as):
    from apps.sharing.models import Grant

    study = _study(org_a, case, ["preview"])
    grant = services.grant_create(case=case, by=owner, grantee=consultant, use_case="custom",
                                  permissions=["view", "download_preview"], renditions=["preview"],
                                  download_limit=1, expires_at=timezone.now() + timedelta(hours=48))
    Grant.objects.filter(pk=grant.pk).update(download_count=1)
    assert _cell(_page(client_as(consultant), study), "preview") == (
        "Not offered: the downloads the share allows are used up")
