"""A consultant's shared-case page and study page offer the same downloads (found by QA): after an
approved request for the original, the shared-case page said "You may download: Original DICOM"
and offered only the original's zip, while the study page offered Lossless and Original (the
lossless download works and counts). Both follow the policy's one answer
(``policy.allowed_renditions``): the original's download gives its lossless copy too
(``renditions.models.SHARING_RENDITION``)."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.sharing import services
from tests.factories import RenditionFactory, StudyFactory

pytestmark = pytest.mark.django_db

LABELS = {"preview": "preview_lossy", "education": "education_low_res", "lossless": "diagnostic_lossless"}


def _study(org, case, lossless="ready"):
    study = StudyFactory(organization=org, case=case)
    for kind, label in LABELS.items():
        RenditionFactory(organization=org, study=study, kind=kind, label=label,
                         status=lossless if kind == "lossless" else "ready")
    return study


def _get(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return html_lib.unescape(response.content.decode())


def _offered(html: str, prefix: str) -> set[str]:
    return set(re.findall(rf'data-testid="{prefix}(preview|education|lossless|original)"', html))


@pytest.mark.parametrize("whole_case", [True, False])
def test_the_shared_case_page_offers_what_the_study_page_offers(org_a, case, owner, consultant, client_as,
                                                                 whole_case):
    study = _study(org_a, case)
    share = services.grant_create(case=case, by=owner, grantee=consultant, use_case="custom", permissions=["view"],
                                  renditions=["preview"], expires_at=timezone.now() + timedelta(hours=48),
                                  **({} if whole_case else {"studies": [study]}))
    req = services.original_request_create(grant=share, by=consultant, reason="Need the thin-slice series.")
    services.original_request_decide(original_request=req, by=owner, approve=True, hours=24)
    client = client_as(consultant)

    study_page = _get(client, reverse("imaging:study_detail", args=[study.public_id]))
    on_study_page = _offered(study_page, "download-")
    assert on_study_page == {"lossless", "original"}

    shared = _get(client, reverse("sharing:shared_case", kwargs={"case_id": case.public_id}))
    on_shared_page = _offered(shared, "download-") | _offered(shared, "study-download-")
    assert on_shared_page == on_study_page
    assert "Download the lossless compressed DICOM (zip)" in shared
    said = re.search(r'data-testid="renditions">(.*?)</dd>', shared, re.S).group(1)
    assert said == "Lossless compressed DICOM, Original DICOM"


def _original_approved_page(case, owner, consultant, client_as) -> str:
    share = services.grant_create(case=case, by=owner, grantee=consultant, use_case="custom", permissions=["view"],
                                  renditions=["preview"], expires_at=timezone.now() + timedelta(hours=48))
    req = services.original_request_create(grant=share, by=consultant, reason="Need the thin-slice series.")
    services.original_request_decide(original_request=req, by=owner, approve=True, hours=24)
    return _get(client_as(consultant), reverse("sharing:shared_case", kwargs={"case_id": case.public_id}))


def test_no_lossless_zip_of_a_case_none_of_whose_studies_has_a_lossless_copy(org_a, case, owner, consultant,
                                                                              client_as):
    """Found by review: every original received lossy (no lossless copy can be made: "Not
    available"), the study pages say the lossless copy is not offered, yet the shared-case page
    offered "Download the lossless compressed DICOM (zip)" (a zip of the lossy originals) and said
    "Lossless compressed DICOM" under "You may download"."""
    _study(org_a, case, lossless="unavailable")
    _study(org_a, case, lossless="unavailable")
    shared = _original_approved_page(case, owner, consultant, client_as)
    assert _offered(shared, "download-") == {"original"}
    assert "Download the lossless compressed DICOM (zip)" not in shared
    said = re.search(r'data-testid="renditions">(.*?)</dd>', shared, re.S).group(1)
    assert said == "Original DICOM"


def test_a_case_with_a_lossless_copy_of_one_study_keeps_its_lossless_zip(org_a, case, owner, consultant,
                                                                          client_as):
    """A case of both: its lossless zip holds the one study's lossless copy (and says which are the
    lossy originals), so it is still offered."""
    _study(org_a, case, lossless="unavailable")
    _study(org_a, case)
    shared = _original_approved_page(case, owner, consultant, client_as)
    assert _offered(shared, "download-") == {"lossless", "original"}
    said = re.search(r'data-testid="renditions">(.*?)</dd>', shared, re.S).group(1)
    assert said == "Lossless compressed DICOM, Original DICOM"
