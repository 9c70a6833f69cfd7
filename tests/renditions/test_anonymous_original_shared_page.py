"""The shared case page of an anonymous link's holder says why the original DICOM (and its
lossless copy) is no longer offered once the organization that shared it stops allowing the
original on anonymous links, in the study page's words for the policy's reason (found by QA: the
downloads went silently and the page said "You may download: nothing (view only)")."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import services as sharing
from apps.sharing.models import SharingPolicy
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import member

pytestmark = pytest.mark.django_db

PASSCODE = "blue-kettle-42"
REASON = {"en": "Not offered: the organization that shared it does not allow the original DICOM on this anonymous link",
          "es": "No se ofrece: la organización que lo compartió no permite el DICOM original en este enlace anónimo"}


def _allow(organization, allowed: bool) -> None:
    SharingPolicy.objects.update_or_create(organization=organization,
                                           defaults={"anonymous_allow_original": allowed})


def _opened_link(study, renditions=("original",)) -> Client:
    """An anonymous link (the policy allowing the original, a passcode on the link), opened by a
    visitor who answered its passcode."""
    org = study.organization
    org.anonymous_links_enabled = True
    org.save()
    _allow(org, True)
    owner = member(org, Role.RADIOLOGIST, email="radiologist@alpha.example")
    _grant, _link, raw = sharing.share_create(case=study.case, by=owner, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS, renditions=list(renditions),
                                              second_factor="passcode", passcode=PASSCODE)
    visitor = Client()
    assert visitor.post(reverse("sharing:link_open", kwargs={"token": raw}), {"value": PASSCODE}).status_code == 302
    return visitor


def _page(visitor, study, language: str) -> str:
    url = reverse("sharing:shared_case", kwargs={"case_id": study.case.public_id})
    response = visitor.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("language", ["en", "es"])
def test_turned_off_the_holders_page_says_why_the_original_went(ct_study, language):
    visitor = _opened_link(ct_study)
    page = _page(visitor, ct_study, language)
    assert 'data-testid="download-original"' in page
    assert 'data-testid="original-not-offered"' not in page and REASON[language] not in page

    _allow(ct_study.organization, False)
    page = _page(visitor, ct_study, language)
    assert 'data-testid="download-original"' not in page and 'data-testid="download-lossless"' not in page
    assert 'data-testid="original-not-offered"' in page
    assert REASON[language] in page

    # on again: offered again, and no reason said
    _allow(ct_study.organization, True)
    page = _page(visitor, ct_study, language)
    assert 'data-testid="download-original"' in page and 'data-testid="original-not-offered"' not in page


def test_a_link_that_never_gave_the_original_says_no_such_reason(ct_study):
    """A preview-only link: "You may download" says what it gives; no reason about the original."""
    visitor = _opened_link(ct_study, renditions=("preview",))
    _allow(ct_study.organization, False)
    page = _page(visitor, ct_study, "en")
    assert 'data-testid="original-not-offered"' not in page and REASON["en"] not in page
