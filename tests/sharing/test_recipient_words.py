"""Every page that names whom a share reaches says it in the same words (one include,
templates/sharing/_recipient.html): the case page's shares, closing a case, My shares and Share
created. My shares had said "address (invited)", the bare e-mail of a named person and the group's
bare name, where the case page said "Invited: address", the person's name and "Group: name"."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import GrantFactory

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_case_page_closing_and_my_shares_name_recipients_alike(org_a, owner, case, consultant, client_as):
    consultant.full_name = "Dana Reader"
    consultant.save()
    for fields in ({"grantee": consultant}, {"grantee": None, "grantee_email": "outside@elsewhere.example"},
                   {"grantee": None, "group_name": "Thoracic board"}, {"grantee": None}):
        GrantFactory(organization=org_a, case=case, created_by=owner, **fields)
    client = client_as(owner)
    pages = {name: client.get(url) for name, url in {
        "case": reverse("cases:case_detail", kwargs={"case_id": case.public_id}),
        "close": reverse("cases:case_close", kwargs={"case_id": case.public_id}),
        "my shares": reverse("sharing:my_shares"),
    }.items()}
    for name, response in pages.items():
        assert response.status_code == 200, name
        text = _text(response.content.decode())
        for words in ("Dana Reader consultant@alpha.example", "Invited: outside@elsewhere.example",
                      "Group: Thoracic board", "Anyone with the link"):
            assert words in text, (name, words)
        assert "(invited)" not in text, name
