"""What assistive technology reads from the pages' markup: a field's error is the description its
widget points at, a group of checkboxes is a named fieldset, status messages stay a list, and
the language of a page (the error page too) and of each language choice is declared."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from apps.organizations.models import Role
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


class _Page(HTMLParser):
    """Ids, aria-describedby references, labels and the open elements around each tag."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.described: list[tuple[str, str]] = []  # (tag, id it points at)
        self.invalid = 0
        self.empty_labels = 0
        self.checkboxes_outside_fieldset = 0
        self.list_roles: list[str | None] = []
        self.options_without_lang = 0
        self.html_lang = None
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for ref in (a.get("aria-describedby") or "").split():
            self.described.append((tag, ref))
        self.invalid += a.get("aria-invalid") == "true"
        self.empty_labels += tag == "label" and a.get("for") == ""
        if tag == "input" and a.get("type") == "checkbox" and a.get("name") in {"cases", "participants",
                                                                                 "mfa_required_roles"}:
            self.checkboxes_outside_fieldset += "fieldset" not in self._open
        if tag == "ul" and "messages" in (a.get("class") or ""):
            self.list_roles.append(a.get("role"))
        if tag == "option" and a.get("value") in {"en", "es"}:
            self.options_without_lang += a.get("lang") != a.get("value")
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag not in {"input", "br", "img", "meta", "link", "hr"}:
            self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            while self._open.pop() != tag:
                pass


def _read(response) -> _Page:
    page = _Page()
    page.feed(response.content.decode())
    return page


@pytest.fixture
def org():
    return OrganizationFactory(mfa_required_roles=[])


@pytest.mark.parametrize(("role", "url_name", "data"), [
    (Role.RADIOLOGIST, "cases:case_create", {"title": ""}),
    (Role.RADIOLOGIST, "cases:board_create", {"title": ""}),
    (Role.ORG_ADMIN, "organizations:settings", {"name": ""}),
    (Role.ORG_ADMIN, "accounts:invitation_send", {"email": "not an address"}),
])
def test_an_invalid_form_points_each_field_at_its_error(org, client_as, role, url_name, data):
    """Django marks an invalid widget aria-invalid and points its aria-describedby at
    "<id>_error" (and "<id>_helptext"): those elements must exist, or the error is never read
    with the field."""
    response = client_as(member(org, role)).post(reverse(url_name), data)
    assert response.status_code == 400
    page = _read(response)
    assert page.invalid, "no field was marked invalid"
    missing = [ref for _tag, ref in page.described if ref not in page.ids]
    assert not missing, f"aria-describedby points at nothing: {missing}"
    assert any(ref.endswith("_error") for _tag, ref in page.described)


@pytest.mark.parametrize(("role", "url_name"), [
    (Role.RADIOLOGIST, "cases:board_create"),
    (Role.ORG_ADMIN, "organizations:settings"),
])
def test_a_group_of_checkboxes_is_a_fieldset_named_by_its_legend(org, client_as, role, url_name):
    """A group label rendered as <label for=""> names nothing; a fieldset's legend names the group."""
    page = _read(client_as(member(org, role)).get(reverse(url_name)))
    assert page.empty_labels == 0
    assert page.checkboxes_outside_fieldset == 0


def test_the_sign_in_page_points_each_field_at_its_error(client):
    """The sign-in form is written by hand: an empty submission (the browser's own check bypassed)
    says what is missing beside each field."""
    response = client.post(reverse("account_login"), {"login": "", "password": ""})
    page = _read(response)
    assert page.invalid == 2
    assert {ref for _tag, ref in page.described} == {"id_login_error", "id_password_error"} <= page.ids


def test_messages_stay_a_list_inside_a_status_region(org, client_as):
    """role="status" on the <ul> took its list role away from its items; it wraps the list."""
    client = client_as(member(org, Role.RADIOLOGIST))
    response = client.post(reverse("cases:case_create"), {"title": "Chest CT", "mrn": "MRN-A11Y-1",
                                                          "patient_name": "Doe^Alex"}, follow=True)
    page = _read(response)
    assert page.list_roles == [None], response.content.decode()[:2000]
    assert 'role="status"><ul class="messages">' in response.content.decode()


def test_language_choices_and_the_error_page_declare_their_language(client):
    page = _read(client.get(reverse("account_login")))
    assert page.options_without_lang == 0
    with translation.override("es"):
        assert 'lang="es"' in render_to_string("500.html").split(">", 2)[1]


def test_a_persons_own_details_say_what_they_are_for_autofill():
    """WCAG 1.3.5: the fields for the user's own name, birth date and e-mail name their purpose."""
    from apps.accounts.forms import AcceptForm, BirthDateForm, SSOStartForm

    assert 'autocomplete="name"' in str(AcceptForm()["full_name"])
    assert 'autocomplete="bday"' in str(BirthDateForm()["birth_date"])
    assert 'autocomplete="email"' in str(SSOStartForm()["email"])
