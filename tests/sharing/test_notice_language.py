"""A notice's e-mail goes in its recipient's language: the one they chose, else the portal's
default (settings.LANGUAGE_CODE), never the language of whoever caused it. A requester in a Spanish
session asked for the original DICOM, and the deciders, who had chosen no language, were e-mailed in
Spanish (found by QA)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone, translation

from apps.sharing import services

pytestmark = pytest.mark.django_db


def test_deciders_who_chose_no_language_are_written_to_in_the_portals_default(owner, case, consultant, radiologist):
    assert settings.LANGUAGE_CODE == "en" and not owner.language and not radiologist.language
    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=24))
    mail.outbox.clear()
    with translation.override("es"):  # the requester's Spanish session
        services.original_request_create(grant=grant, by=consultant, reason="Necesito la serie completa.")
    for decider in (owner, radiologist):
        (to_decider,) = [m for m in mail.outbox if m.to == [decider.email]]
        assert to_decider.subject == "[Lightbox] A recipient asked for the original DICOM of a shared case."
        assert to_decider.body.startswith("A recipient asked for the original DICOM of a shared case.")


def test_a_chosen_language_still_wins_over_the_default(owner, case, consultant, radiologist):
    radiologist.language = "es"
    radiologist.save(update_fields=["language"])
    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=24))
    mail.outbox.clear()
    services.original_request_create(grant=grant, by=consultant, reason="Full series please.")
    (to_radiologist,) = [m for m in mail.outbox if m.to == [radiologist.email]]
    assert to_radiologist.subject.startswith("[Lightbox] ") and "A recipient asked" not in to_radiologist.body
    (to_owner,) = [m for m in mail.outbox if m.to == [owner.email]]
    assert to_owner.body.startswith("A recipient asked for the original DICOM of a shared case.")


def test_the_notice_in_the_app_is_shown_in_its_readers_language(owner, case, consultant, client_as):
    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=24))
    with translation.override("es"):
        services.original_request_create(grant=grant, by=consultant, reason="Necesito la serie completa.")
    page = client_as(owner).get("/sharing/received/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "A recipient asked for the original DICOM of a shared case." in page


def test_a_long_notice_is_cut_in_its_subject_at_a_word_never_inside_one():
    """Subjects were the notice's first 80 characters: "... sus c", "... ya pue" (found by QA)."""
    from apps.sharing.services import SUBJECT_MAX, _subject_text

    short = "Your request for the original DICOM was declined."
    assert _subject_text(short) == short
    long = ("Ha finalizado una reunión del comité de tumores en la que usted participó: sus casos ya no "
            "están abiertos para usted.")
    subject = _subject_text(long)
    assert len(subject) <= SUBJECT_MAX and subject.endswith("…")
    assert long.startswith(subject[:-1]) and long[len(subject) - 1] == " "  # cut where a word ends
