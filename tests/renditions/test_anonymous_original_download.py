"""The original DICOM on an anonymous link is downloaded only while its organization's sharing
policy allows it (``SharingPolicy.anonymous_allow_original``, read at each download as expiry is)
and the link asks for a second factor. Turned off, an opened link's original download is refused
with a page that says why: nothing sent, nothing counted, the refusal recorded (review 21)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit import actions as audit_actions
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.sharing import services as sharing
from apps.sharing.models import Grant, GrantDownload, SharingPolicy
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import member

pytestmark = pytest.mark.django_db

PASSCODE = "blue-kettle-42"


def _url(study, kind: str) -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _allow(organization, allowed: bool) -> None:
    SharingPolicy.objects.update_or_create(organization=organization,
                                           defaults={"anonymous_allow_original": allowed})


def _opened_link(study, **kwargs) -> tuple[Grant, Client]:
    """An anonymous link with the original (the policy allowing it, a passcode on the link),
    opened by a visitor who answered its passcode."""
    org = study.organization
    org.anonymous_links_enabled = True
    org.save()
    _allow(org, True)
    owner = member(org, Role.RADIOLOGIST, email="radiologist@alpha.example")
    grant, _link, raw = sharing.share_create(case=study.case, by=owner, use_case=UseCase.CUSTOM,
                                             recipient_kind=RecipientKind.ANONYMOUS, renditions=["original"],
                                             second_factor="passcode", passcode=PASSCODE, **kwargs)
    visitor = Client()
    assert visitor.post(reverse("sharing:link_open", kwargs={"token": raw}), {"value": PASSCODE}).status_code == 302
    return grant, visitor


def _downloads_recorded() -> int:
    return AuditEvent.objects.filter(action__in=[audit_actions.DOWNLOAD_COMPLETED,
                                                 audit_actions.DOWNLOAD_INCOMPLETE]).count()


def test_allowed_with_a_passcode_the_original_is_downloaded(ct_study):
    grant, visitor = _opened_link(ct_study)
    response = visitor.get(_url(ct_study, "original"))
    assert response.status_code == 200 and b"".join(response.streaming_content)[:2] == b"PK"
    grant.refresh_from_db()
    assert grant.download_count == 1


@pytest.mark.parametrize("kind", ["original", "lossless"])
def test_turned_off_the_original_is_refused_with_a_page_nothing_counted(ct_study, kind):
    grant, visitor = _opened_link(ct_study)
    _allow(ct_study.organization, False)
    denials = AuditEvent.objects.filter(action="access.denied").count()
    response = visitor.get(_url(ct_study, kind))
    assert response.status_code == 403 and not response.streaming
    page = response.content.decode()
    assert 'data-testid="original-not-on-link"' in page
    assert "does not allow the original DICOM on this anonymous link" in page
    assert 'name="viewport"' in page  # the site's layout, readable on a phone
    grant.refresh_from_db()
    assert grant.download_count == 0 and not GrantDownload.objects.exists() and _downloads_recorded() == 0
    denied = AuditEvent.objects.filter(action="access.denied").order_by("pk")
    assert denied.count() == denials + 1 and denied.last().outcome == "denied"
    # HEAD is refused alike
    assert visitor.head(_url(ct_study, kind)).status_code == 403
    # on again: the same link downloads again (the rule is read at each download)
    _allow(ct_study.organization, True)
    assert visitor.get(_url(ct_study, kind)).status_code == 200


def test_a_link_without_a_second_factor_made_before_the_rule_is_refused(ct_study):
    """A live link from before the rule (the original, no passcode): refused even where the
    organization allows the original on anonymous links, since its link asks for nothing."""
    org = ct_study.organization
    org.anonymous_links_enabled = True
    org.save()
    owner = member(org, Role.RADIOLOGIST, email="radiologist@alpha.example")
    grant, _link, raw = sharing.share_create(case=ct_study.case, by=owner, use_case=UseCase.CUSTOM,
                                            recipient_kind=RecipientKind.ANONYMOUS)
    Grant.objects.filter(pk=grant.pk).update(permissions=["view", "download_original"], renditions=["original"])
    visitor = Client()
    assert visitor.post(reverse("sharing:link_open", kwargs={"token": raw})).status_code == 302
    for allowed in (False, True):
        _allow(org, allowed)
        response = visitor.get(_url(ct_study, "original"))
        assert response.status_code == 403 and b'data-testid="original-not-on-link"' in response.content
    grant.refresh_from_db()
    assert grant.download_count == 0


def test_the_viewers_diagnostic_frames_are_refused_too(ct_study):
    """The viewer's diagnostic frames are the original too: refused on such a link once turned off."""
    from apps.imaging.models import Instance

    _grant, visitor = _opened_link(ct_study)
    instance = Instance.objects.filter(series__study=ct_study).first()
    url = reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + "?quality=diagnostic"
    assert visitor.get(url).status_code == 200
    _allow(ct_study.organization, False)
    assert visitor.get(url).status_code == 403
