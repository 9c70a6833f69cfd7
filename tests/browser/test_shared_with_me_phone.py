"""Shared with me on a phone (its table scrolls sideways): a case's name and the note that a
request for the original DICOM waits for a decision read a few words a line. Squeezed, the case
ran a word a line and the note nine lines, its date broken in two ("2026-" / "12-06").
A declined request is said so, and offered again, as on the shared case page: the list offered
Request the original DICOM as if nothing had been asked."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.organizations.models import Role
from tests.browser.conftest import device_context, signed_in_as
from tests.factories import CaseFactory, GrantFactory, OrganizationFactory, OriginalRequestFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DECLINED = {"en": "was declined on", "es": "fue rechazada el"}
AGAIN = {"en": "Request the original DICOM again", "es": "Volver a solicitar el DICOM original"}

#: how many lines an inline element's text takes (one box a line)
LINES = "element => element.getClientRects().length"


@pytest.mark.parametrize("language", ["es", "en"])
def test_a_pending_or_declined_request_reads_a_few_words_a_line_on_a_phone(browser, live_server, output_dir, language):
    org = OrganizationFactory(name="Hospital Universitario de Ejemplo", mfa_required_roles=[])
    owner = member(org, Role.CLINICIAN, email="owner@received.example")
    reader = member(org, Role.EXTERNAL_CONSULTANT, email="reader@received.example", language=language)
    case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner,
                       title="Chest CT - nodule follow-up")
    grant = GrantFactory(organization=org, case=case, grantee=reader, created_by=owner,
                         permissions=["view", "download_preview"], renditions=["preview"])
    OriginalRequestFactory(organization=org, grant=grant, status="pending")
    other = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner, title="MRI brain")
    declined = GrantFactory(organization=org, case=other, grantee=reader, created_by=owner,
                            permissions=["view", "download_preview"], renditions=["preview"])
    OriginalRequestFactory(organization=org, grant=declined, status="declined", decided_at=timezone.now())
    context = device_context(browser, 390, 844, language=language)
    page = context.new_page()
    try:
        signed_in_as(page, live_server.url, reader)
        page.goto(f"{live_server.url}/sharing/received/")
        note = page.get_by_test_id("original-request-pending")
        expect(note).to_be_visible()
        page.wait_for_load_state("load")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls, not the page
        assert note.evaluate(LINES) <= 4
        assert page.get_by_role("link", name="Chest CT - nodule follow-up").evaluate(LINES) <= 2
        expect(page.get_by_test_id("original-request-declined")).to_contain_text(DECLINED[language])
        expect(page.get_by_test_id("request-original")).to_have_text(AGAIN[language])
        page.screenshot(path=str(output_dir / f"shared-with-me-pending-{language}-390.png"), full_page=True)
    finally:
        context.close()
