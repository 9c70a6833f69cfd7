"""The share form takes only the fields of the chosen kind of recipient (QA on the demo: a passcode
and a use limit on a share to a named person were accepted and shown on the review, where they
protect nothing: such a share opens only for its recipient, signed in). An anonymous link's terms
(use limit, second factor, passcode) on a share to a person, a group or an invited address are
refused beside their field; another kind's recipients are dropped, never shown on the review; and
where the organization's policy forbids anonymous links (``policy.anonymous_links_allowed``) the
link's terms are not offered at all. The browser's side: tests/browser/test_share_form_kinds.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.sharing.models import Grant, ShareLink
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db

NOT_FOR_NAMED = "Only an anonymous link takes this"
LINK_FIELDS = ("max_uses", "second_factor", "passcode")


def _url(case):
    return reverse("sharing:case_share", kwargs={"case_id": case.public_id})


def _recipient(kind, consultant, radiologist):
    return {
        "user": {"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": consultant.email},
        "email": {"use_case": "second_opinion", "recipient_kind": "email", "recipient_email": consultant.email},
        "group": {"use_case": "tumor_board", "recipient_kind": "group",
                  "group_emails": f"{consultant.email}\n{radiologist.email}", "group_name": "Thoracic board"},
    }[kind]


@pytest.mark.parametrize("kind", ["user", "email", "group"])
@pytest.mark.parametrize(("given", "refused"), [
    ({"max_uses": "3"}, ["max_uses"]),
    ({"second_factor": "passcode", "passcode": "board-2026"}, ["second_factor", "passcode"]),
    ({"passcode": "board-2026"}, ["passcode"]),
    ({"second_factor": "birth_date"}, ["second_factor"]),
])
def test_a_link_term_on_a_share_to_named_people_is_refused_beside_it(client_as, owner, case, consultant,
                                                                       radiologist, anonymous_on, kind, given,
                                                                       refused):
    client = client_as(owner)
    form = {**_recipient(kind, consultant, radiologist), **given}
    review = client.post(_url(case), form)
    assert review.status_code == 400 and b'name="confirm"' not in review.content
    errors = review.context["form"].errors
    assert sorted(errors) == sorted(refused)
    for name in refused:
        assert NOT_FOR_NAMED in errors[name][0]
    # nor made by a confirmation sent without the review (an old page, a hand-made request)
    assert client.post(_url(case), {**form, **confirmation(client)}).status_code == 400
    assert not Grant.objects.exists() and not ShareLink.objects.exists()


def test_an_anonymous_link_still_takes_its_terms(client_as, owner, case, anonymous_on):
    client = client_as(owner)
    form = {"use_case": "custom", "recipient_kind": "anonymous", "max_uses": "3", "second_factor": "passcode",
            "passcode": "board-2026", "recipient_email": "someone@alpha.example", "group_name": "Stray"}
    review = client.post(_url(case), form)
    assert review.status_code == 200, review.context["form"].errors
    page = review.content.decode()
    assert 'data-testid="confirm-max-uses">3<' in page and 'data-testid="confirm-second-factor"' in page
    # another kind's recipients are dropped: not on the review, not on the share
    assert "someone@alpha.example" not in page.split('name="confirm"')[0].split("<form")[0]
    assert client.post(_url(case), {**form, **confirmation(client)}).status_code == 200
    link = ShareLink.objects.get()
    assert (link.anonymous, link.max_uses, link.second_factor) == (True, 3, "passcode")
    assert (link.grant.grantee_email, link.grant.group_name) == ("", "")


def test_a_passcode_without_the_passcode_factor_is_refused(client_as, owner, case, anonymous_on):
    """It would not be asked: the sharer believed the link protected by it."""
    response = client_as(owner).post(_url(case), {"use_case": "custom", "recipient_kind": "anonymous",
                                                  "passcode": "board-2026"})
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["passcode"]
    assert "only when the second factor is “Passcode”" in response.context["form"].errors["passcode"][0]
    assert not ShareLink.objects.exists()


def test_another_kinds_recipients_are_dropped_from_the_review(client_as, owner, case, consultant, radiologist):
    """A group's addresses typed before the kind was changed to a person (the form without
    JavaScript shows every field): the review shows, and the share names, the person alone."""
    client = client_as(owner)
    form = {**_recipient("user", consultant, radiologist), "group_emails": radiologist.email,
            "group_name": "Thoracic board"}
    review = client.post(_url(case), form)
    assert review.status_code == 200
    facts = review.content.decode().split('<dl class="facts">')[1].split("</dl>")[0]
    assert consultant.email in facts and radiologist.email not in facts and "Thoracic board" not in facts
    # and a person's address on a group's share
    group = {**_recipient("group", consultant, radiologist), "recipient_email": "stray@alpha.example"}
    facts = client.post(_url(case), group).content.decode().split('<dl class="facts">')[1].split("</dl>")[0]
    assert "stray@alpha.example" not in facts and "Thoracic board" in facts


def test_no_link_terms_are_offered_where_anonymous_links_are_off(client_as, owner, case, consultant):
    assert not case.organization.anonymous_links_enabled
    page = client_as(owner).get(_url(case)).content.decode()
    for name in LINK_FIELDS:
        assert f'name="{name}"' not in page
    assert 'value="anonymous"' not in page
    # the fields that stay are marked with their kinds, for js/share_form.js
    assert 'name="recipient_email"' in page and 'data-recipient-kinds="user email"' in page
    assert 'data-recipient-kinds="group"' in page
    assert 'src="/static/js/share_form.js"' in page


def test_link_terms_are_offered_for_anonymous_links_where_allowed(client_as, owner, case, anonymous_on):
    page = client_as(owner).get(_url(case)).content.decode()
    for name in LINK_FIELDS:
        tag = page.split(f'name="{name}"')[0].rsplit("<", 1)[1] + page.split(f'name="{name}"')[1].split(">")[0]
        assert 'data-recipient-kinds="anonymous"' in tag, name


def test_link_terms_sent_where_anonymous_links_are_off_are_refused(client_as, owner, case, consultant,
                                                                     radiologist):
    """A page from before the switch was turned off: said, nothing made, not silently dropped."""
    client = client_as(owner)
    form = {**_recipient("user", consultant, radiologist), "second_factor": "passcode", "passcode": "board-2026"}
    response = client.post(_url(case), {**form, **confirmation(client)})
    assert response.status_code == 400
    assert "Anonymous links are switched off for this organization" in " ".join(
        response.context["form"].non_field_errors())
    assert not Grant.objects.exists()
    # a form without them is reviewed as before
    assert client.post(_url(case), _recipient("user", consultant, radiologist)).status_code == 200
