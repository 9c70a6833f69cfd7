"""The share page says which recipients each template takes before anything is submitted (QA:
"Anonymous link" was offered for every template, and only after submitting another template did the
page say "This template shares with: A named person, An invited e-mail address."). Said from the
templates' own table, the one the form's check uses."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.sharing.usecases import TEMPLATES, RecipientKind, UseCase

pytestmark = pytest.mark.django_db


def _page(client_as, owner, case):
    return client_as(owner).get(reverse("sharing:case_share", kwargs={"case_id": case.public_id})).content.decode()


def _cell(page, key):
    return re.search(rf'data-testid="template-recipients-{key}">(.*?)</td>', page).group(1)


def test_the_templates_table_lists_the_recipients_each_template_takes(client_as, owner, case):
    case.organization.anonymous_links_enabled = True
    case.organization.save(update_fields=["anonymous_links_enabled"])
    page = _page(client_as, owner, case)
    for key, template in TEMPLATES.items():
        cell = _cell(page, key)
        for kind in RecipientKind:
            assert (str(kind.label) in cell) == (kind in template.recipients), (key, kind)
    assert str(RecipientKind.ANONYMOUS.label) in _cell(page, UseCase.CUSTOM)
    # and beside the choice of recipient, before the template is submitted
    assert "Anonymous link: only with Custom." in page


def test_anonymous_links_are_not_listed_where_the_organization_switched_them_off(client_as, owner, case):
    assert not case.organization.anonymous_links_enabled
    page = _page(client_as, owner, case)
    assert str(RecipientKind.ANONYMOUS.label) not in _cell(page, UseCase.CUSTOM)
    assert "Anonymous link: only with" not in page
