"""The share page's table of templates lists each template's notes as a list (found by QA): the
External consultant handoff's read "MFA required renewable", two notes run together."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_each_templates_notes_read_as_a_list(case, owner, client_as):
    html = client_as(owner).get(reverse("sharing:case_share", kwargs={"case_id": case.public_id})).content.decode()
    notes = {key: " ".join(text.split()) for key, text in
             re.findall(r'data-testid="template-notes-(\w+)">(.*?)</td>', html, re.S)}
    assert notes["consultant"] == "MFA required, renewable"
    assert notes["tumor_board"] == "Renewable"
    assert notes["second_opinion"] == ""
