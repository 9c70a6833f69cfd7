"""A share that gives no download shows no download count or limit (found by QA): an anonymous
Custom link with Permissions: View and a download limit of 3 showed its visitor "0 of 3 downloads
used" beside "You may download: nothing (view only)", its review "Download limit 3" and My shares
"Downloads 0 / 3". Whether a share gives any download is the policy's (``policy.names_downloads``:
its renditions, the permissions they need, its use case's cap). The limit a view-only share keeps
(an anonymous link always has one) limits nothing and is not shown; the review says a limit
entered for it is not used."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.sharing import policy, services
from apps.sharing.usecases import RecipientKind, Rendition, UseCase
from tests.factories import LINK_PASSCODE, anonymous_original_terms, open_anonymous_link

pytestmark = pytest.mark.django_db


def _anonymous(case, owner, **kwargs):
    case.organization.anonymous_links_enabled = True
    case.organization.save()
    return services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                 recipient_kind=RecipientKind.ANONYMOUS, **kwargs)


def _visit(raw: str) -> str:
    visitor = Client()
    response = open_anonymous_link(visitor, raw, passcode=LINK_PASSCODE)
    assert response.status_code == 302
    return visitor.get(response["Location"]).content.decode()


def _downloads_cell(html: str, grant) -> str:
    row = re.search(rf'data-grant="{grant.public_id}">(.*?)</tr>', html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", re.search(r'data-testid="downloads">(.*?)</td>', row, re.S)
                           .group(1)).split())


def test_a_view_only_link_shows_its_visitor_no_download_count(case, owner):
    grant, _link, raw = _anonymous(case, owner, download_limit=3)
    assert grant.permissions == ["view"] and grant.download_limit == 3  # kept, limiting nothing
    html = _visit(raw)
    assert "nothing (view only)" in html
    assert "downloads used" not in html


def test_a_link_that_gives_downloads_still_shows_its_count(case, owner):
    _grant, _link, raw = _anonymous(case, owner, renditions=[Rendition.ORIGINAL, Rendition.PREVIEW],
                                    download_limit=1, **anonymous_original_terms(case.organization))
    assert "0 of 1 downloads used" in _visit(raw)


def test_my_shares_says_view_only_where_a_share_gives_no_download(case, owner, client_as):
    view_only, _l1, _r1 = _anonymous(case, owner, download_limit=3)
    downloads, _l2, _r2 = _anonymous(case, owner, renditions=[Rendition.ORIGINAL, Rendition.PREVIEW],
                                     download_limit=1, **anonymous_original_terms(case.organization))
    html = client_as(owner).get(reverse("sharing:my_shares")).content.decode()
    assert _downloads_cell(html, view_only) == "View only"
    assert _downloads_cell(html, downloads) == "0 / 1"


def _review(client, case, **fields) -> str:
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    response = client.post(url, fields)
    html = response.content.decode()
    assert response.status_code == 200 and 'name="confirm"' in html, html
    return html


def _limit_said(html: str) -> str | None:
    found = re.search(r'data-testid="confirm-download-limit">(.*?)</dd>', html, re.S)
    return found.group(1).strip() if found else None


def test_the_review_says_a_limit_on_a_view_only_share_is_not_used(case, owner, consultant, client_as):
    case.organization.anonymous_links_enabled = True
    case.organization.save()
    client = client_as(owner)
    view_only = _review(client, case, use_case="custom", recipient_kind="anonymous", download_limit="3")
    assert _limit_said(view_only) == "None: this share gives no download"
    # a view-only link without a limit entered says nothing of the one it keeps
    assert _limit_said(_review(client, case, use_case="custom", recipient_kind="anonymous")) is None
    downloads = _review(client, case, use_case="second_opinion", recipient_kind="user",
                        recipient_email=consultant.email, download_limit="2")
    assert _limit_said(downloads) == "2"


@pytest.mark.parametrize(("use_case", "permissions", "renditions", "gives"), [
    (UseCase.CUSTOM, ["view"], ["preview"], False),
    (UseCase.CUSTOM, ["view", "download_original"], ["original", "preview"], True),
    (UseCase.CUSTOM, ["view", "download_original"], ["preview"], False),  # no rendition it names
    (UseCase.SECOND_OPINION, ["view", "download_preview"], [], True),  # none named: every one
    (UseCase.PATIENT_EDUCATION, ["view", "download_preview"], ["education"], True),
    (UseCase.PATIENT_EDUCATION, ["view", "download_preview"], ["preview"], False),  # capped by its use case
])
def test_whether_a_share_gives_any_download(use_case, permissions, renditions, gives):
    assert policy.names_downloads(use_case=use_case, permissions=permissions, renditions=renditions) is gives
