"""The sharing settings include the Custom template's default and longest expiry (QA: the page
had every template's but Custom's, 24 h and 72 h, which an organization could not shorten). Like
the others, they may only narrow the built-in ones; its anonymous links stay held to the
anonymous links' own limit as well."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.sharing import services
from apps.sharing.usecases import TEMPLATES, RecipientKind, UseCase, template_for

pytestmark = pytest.mark.django_db


def _form(**changes):
    form = {"anonymous_max_hours": 24, "anonymous_download_limit": 2, "original_approval_max_hours": 24}
    for key, template in TEMPLATES.items():
        form[f"{key}__default_hours"], form[f"{key}__max_hours"] = template.default_hours, template.max_hours
    return {**form, **changes}


def test_the_settings_page_offers_customs_default_and_longest_expiry(admin_a, client_as):
    page = client_as(admin_a).get(reverse("sharing:policy")).content.decode()
    assert 'name="custom__default_hours"' in page and 'name="custom__max_hours"' in page
    assert "anonymous links end sooner" in page


def test_an_admin_shortens_custom_and_new_custom_shares_follow(admin_a, client_as, case, owner, radiologist):
    client = client_as(admin_a)
    response = client.post(reverse("sharing:policy"), _form(custom__default_hours=12, custom__max_hours=48))
    assert response.status_code == 302
    template = template_for(case.organization_id, UseCase.CUSTOM)
    assert (template.default_hours, template.max_hours) == (12, 48)
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                               recipient_kind=RecipientKind.USER, grantee=radiologist)
    assert abs((grant.expires_at - grant.starts_at).total_seconds() - 12 * 3600) < 5
    with pytest.raises(ValidationError):
        services.share_terms(organization_id=case.organization_id, use_case=UseCase.CUSTOM,
                             recipient_kind=RecipientKind.USER, hours=60)


@pytest.mark.parametrize("changes", [{"custom__max_hours": 96},
                                     {"custom__default_hours": 60, "custom__max_hours": 48}])
def test_customs_limits_are_never_raised_nor_inverted(admin_a, client_as, case, changes):
    response = client_as(admin_a).post(reverse("sharing:policy"), _form(**changes))
    assert response.status_code == 400
    template = template_for(case.organization_id, UseCase.CUSTOM)
    assert (template.default_hours, template.max_hours) == (24, 72)
