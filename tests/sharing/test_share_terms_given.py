"""The share review lists what the recipient will get, and says its durations in the right
number (found by QA): a tumor board review's review said "Images: Original DICOM, Annotated report
(PDF), Compressed preview" beside "Permissions: View, Download preview", and its recipient was then
offered "Request the original DICOM"; "Expires after 1 hours"; the consultant's notice "approved
for 1 horas". The renditions a share gives are decided with its terms (``services.share_terms``):
the original DICOM only with its download."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.core import i18n
from apps.sharing import services
from apps.sharing.models import Notification
from apps.sharing.usecases import RecipientKind, Rendition, UseCase

pytestmark = pytest.mark.django_db


def _dd(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">(.*?)</dd>', html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", found).split())


def test_a_tumor_board_review_lists_only_the_images_it_gives(case, owner, consultant, client_as):
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    review = client_as(owner).post(url, {"use_case": "tumor_board", "recipient_kind": "user",
                                         "recipient_email": consultant.email})
    html = review.content.decode()
    assert review.status_code == 200 and 'name="confirm"' in html
    assert _dd(html, "confirm-permissions") == "View, Download preview"
    assert _dd(html, "confirm-renditions") == "Annotated report (PDF), Compressed preview"
    # the grant confirming makes names the same: no original it does not give
    grant, _link, _raw = services.share_create(case=case, by=owner, use_case=UseCase.TUMOR_BOARD,
                                               recipient_kind=RecipientKind.USER, grantee=consultant)
    assert Rendition.ORIGINAL not in grant.renditions and "download_original" not in grant.permissions
    assert set(grant.renditions) == {Rendition.REPORT, Rendition.PREVIEW}


def test_a_share_that_downloads_the_original_still_lists_it(case, owner, consultant, client_as):
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    review = client_as(owner).post(url, {"use_case": "second_opinion", "recipient_kind": "user",
                                         "recipient_email": consultant.email})
    assert _dd(review.content.decode(), "confirm-renditions") == "Original DICOM, Compressed preview"


@pytest.mark.parametrize(("hours", "said"), [(1, "1 hour"), (2, "2 hours")])
def test_the_review_says_the_expiry_in_the_right_number(case, owner, consultant, client_as, hours, said):
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    review = client_as(owner).post(url, {"use_case": "telehealth", "recipient_kind": "user",
                                         "recipient_email": consultant.email, "hours": hours})
    html = review.content.decode()
    assert review.status_code == 200 and 'name="confirm"' in html
    expiry = " ".join(re.search(r"Expires after</dt><dd>(.*?)</dd>", html, re.S).group(1).split())
    assert expiry == said


@pytest.mark.parametrize(("hours", "said"), [(1, "was approved for 1 hour."), (3, "was approved for 3 hours.")])
def test_an_approval_notice_says_its_hours_in_the_right_number(case, owner, consultant, hours, said):
    grant = services.grant_create(case=case, grantee=consultant, permissions=["view"], by=owner,
                                  expires_at=timezone.now() + timedelta(hours=24))
    req = services.original_request_create(grant=grant, by=consultant, reason="I need the full series.")
    services.original_request_decide(original_request=req, by=owner, approve=True, hours=hours)
    notice = Notification.objects.get(user=consultant, verb="original_request.approved")
    assert notice.message == f"Your request for the original DICOM {said}"
    # stored with both forms, chosen in the reader's language when shown
    assert notice.message_parts[0][0] == [
        "Your request for the original DICOM was approved for %(hours)s hour.",
        "Your request for the original DICOM was approved for %(hours)s hours.", "hours"]


def test_a_deferred_plural_is_chosen_by_its_readers_language(monkeypatch):
    """Shown later, a stored plural text asks ``ngettext`` for its count's form in the reader's
    language (Spanish "1 hora" / "3 horas" once the catalogue has them)."""
    asked = []

    def fake_ngettext(singular, plural, number):
        asked.append((singular, plural, number))
        return "aprobada durante %(hours)s hora" if number == 1 else "aprobada durante %(hours)s horas"

    monkeypatch.setattr(i18n, "ngettext", fake_ngettext)
    for hours, spanish in ((1, "aprobada durante 1 hora"), (5, "aprobada durante 5 horas")):
        text = i18n.Deferred.ngettext("approved for %(hours)s hour", "approved for %(hours)s hours", "hours",
                                      hours=hours)
        stored = i18n.explained(text, field="message")
        back = i18n.restore(stored["message"], [list(p) for p in stored["message_parts"]])
        assert str(back) == ("approved for 1 hour" if hours == 1 else f"approved for {hours} hours")
        assert i18n.translate(back) == spanish
    assert [n for _s, _p, n in asked] == [1, 5]
