"""The organization's largest upload is typed as a number and a unit (MB, GB: 1 GB is 1024 MB,
as filesizeformat shows sizes everywhere in the portal) and stored, and given by the API, in bytes."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from apps.audit.models import AuditEvent
from apps.organizations.forms import OrganizationPolicyForm

pytestmark = pytest.mark.django_db

MB, GB = 1024**2, 1024**3
URL = reverse("organizations:settings")


def settings_data(number: str, unit: str) -> dict[str, object]:
    return {"upload_max_bytes_number": number, "upload_max_bytes_unit": unit, "invitation_ttl_hours": 72,
            "password_login_allowed": "on", "mfa_required_roles": [], "staff_idle_minutes": 60,
            "external_idle_minutes": 15}


@pytest.mark.parametrize(("stored", "number", "unit"), [
    (20 * GB, "20", "GB"), (1536 * MB, "1.5", "GB"), (500 * MB, "500", "MB"), (2000 * MB, "2000", "MB")])
def test_the_settings_page_shows_the_limit_in_force_in_mb_or_gb(client_as, admin_a, org_a, stored, number, unit):
    org_a.upload_max_bytes = stored
    org_a.save(update_fields=["upload_max_bytes"])

    page = client_as(admin_a).get(URL)

    assert page.status_code == 200
    field = page.context["form"]["upload_max_bytes"]
    html = str(field)
    assert f'name="upload_max_bytes_number" value="{number}"' in html
    assert f'<option value="{unit}" selected>' in html
    assert 'aria-label="Unit"' in html  # the unit list is named; the label names the number box
    assert field.id_for_label == "id_upload_max_bytes_0"
    assert b'<label for="id_upload_max_bytes_0">Largest upload</label>' in page.content


@pytest.mark.parametrize(("number", "unit", "stored"), [
    ("2", "GB", 2 * GB), ("1.5", "GB", 1536 * MB), ("512", "MB", 512 * MB), ("1", "MB", MB), (" 3 ", "GB", 3 * GB)])
def test_a_limit_typed_in_mb_or_gb_is_stored_in_bytes(client_as, admin_a, org_a, number, unit, stored):
    response = client_as(admin_a).post(URL, settings_data(number, unit))

    assert response.status_code == 302
    org_a.refresh_from_db()
    assert org_a.upload_max_bytes == stored
    event = AuditEvent.objects.get(action="organization.policy_changed", organization=org_a)
    assert event.details["upload_max_bytes"] == {"before": 20 * GB, "after": stored}
    # the API still speaks bytes
    api = client_as(admin_a).get(f"/api/v1/organizations/{org_a.public_id}/")
    assert api.status_code == 200 and api.json()["upload_max_bytes"] == stored


def test_saving_the_form_unchanged_keeps_a_limit_that_is_no_round_size(client_as, admin_a, org_a):
    """A limit set in bytes elsewhere (the admin site) is shown exactly in MB, so sending the form
    back as it came changes nothing."""
    org_a.upload_max_bytes = 1_500_000
    org_a.save(update_fields=["upload_max_bytes"])
    page = client_as(admin_a).get(URL)
    assert 'value="1.430511474609375"' in str(page.context["form"]["upload_max_bytes"])

    assert client_as(admin_a).post(URL, settings_data("1.430511474609375", "MB")).status_code == 302
    org_a.refresh_from_db()
    assert org_a.upload_max_bytes == 1_500_000
    assert all("upload_max_bytes" not in e.details
               for e in AuditEvent.objects.filter(action="organization.policy_changed"))


@pytest.mark.parametrize(("number", "unit", "message"), [
    ("-2", "GB", "The largest upload must be at least 1 MB."),
    ("-1e999999", "GB", "The largest upload must be at least 1 MB."),
    ("0", "MB", "The largest upload must be at least 1 MB."),
    ("0.5", "MB", "The largest upload must be at least 1 MB."),
    ("1e-30", "GB", "The largest upload must be at least 1 MB."),
    ("9999999999", "GB", "The largest upload must be at most 8,589,934,591 GB."),
    ("1e999999", "GB", "The largest upload must be at most 8,589,934,591 GB."),
    ("two", "GB", "Enter a number."),
    ("NaN", "GB", "Enter a number."),
    ("Infinity", "MB", "Enter a number."),
    ("5368709120", "", "This field is required."),
    ("", "GB", "This field is required."),
    ("5", "TB", "Select a valid choice."),
    ("1.500", "GB", "“1.500” can be read two ways."),
    ("1,500", "MB", "“1,500” can be read two ways."),
    ("1,5,5", "GB", "Enter a number."),
    ("0,5", "MB", "The largest upload must be at least 1 MB."),
])
def test_a_bad_limit_is_refused_with_a_message_beside_the_field(client_as, admin_a, org_a, number, unit, message):
    response = client_as(admin_a).post(URL, settings_data(number, unit))

    assert response.status_code == 400
    errors = response.context["form"].errors["upload_max_bytes"]
    assert any(e.startswith(message) for e in errors), errors
    assert b'id="id_upload_max_bytes_error"' in response.content
    assert b'aria-invalid="true"' in response.content
    assert b"Now: 20.0\xc2\xa0GB" in response.content  # the limit in force stays in view
    org_a.refresh_from_db()
    assert org_a.upload_max_bytes == 20 * GB


def test_the_messages_are_translated(org_a):
    with translation.override("es"):
        form = OrganizationPolicyForm(settings_data("two", "GB"), instance=org_a)
        assert not form.is_valid()
        assert form.errors["upload_max_bytes"] == ["Introduzca un número."]


@pytest.mark.parametrize(("number", "unit", "stored"), [
    ("1,5", "GB", 1536 * MB), ("1.5", "GB", 1536 * MB), (" 2,25 ", "GB", 2304 * MB), ("0,5", "GB", 512 * MB),
    ("1500", "MB", 1500 * MB), ("10,25", "GB", 10 * GB + 256 * MB), ("0.500", "GB", 512 * MB),
])
def test_a_decimal_comma_is_read_as_people_write_it(client_as, admin_a, org_a, number, unit, stored):
    """In Spanish 1,5 is one and a half: it was taken as 15 (a number box drops the comma)."""
    assert client_as(admin_a).post(URL, settings_data(number, unit)).status_code == 302
    org_a.refresh_from_db()
    assert org_a.upload_max_bytes == stored
