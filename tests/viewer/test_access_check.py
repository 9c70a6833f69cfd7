"""An open viewer's access check (apps.viewer.views.viewer_access): asked on a timer by viewer.js,
so that a revoked share or an ended tumor board stops a reader who stays on one image (no frame
asked for). One policy decision (VIEW_IMAGES on the study): 200 JSON while allowed; afterwards
the JSON refusal a frame gets, with the message viewer.js shows and nothing of the study. The
check is not activity: it keeps neither the sign-in (idle limit) nor the viewer session alive.

Also: the Mode under Details never says "Diagnostic quality available" to a reader of originals
when an original is known to be lossy (the decision that labels its frames "lossy")."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.middleware import LAST_SEEN
from apps.audit.models import AuditEvent
from apps.organizations.models import Role
from apps.renditions.models import Kind, Label, Rendition
from apps.viewer.models import ViewerSession
from tests.factories import BoardSessionFactory, InstanceFactory, SeriesFactory, member
from tests.pages import page_queries, policy_grant_reads, reads_of

pytestmark = pytest.mark.django_db

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
J2K_LOSSY_OR_LOSSLESS = "1.2.840.10008.1.2.4.91"


def _access(study) -> str:
    return reverse("viewer:access", kwargs={"study_id": study.public_id})


def _page(study) -> str:
    return reverse("viewer:viewer", kwargs={"study_id": study.public_id})


def _no_phi(response, study) -> None:
    body = response.content.decode()
    for text in (study.study_description, study.case.title, str(study.public_id), str(study.case.public_id)):
        if text:
            assert text not in body, text
    patient = getattr(study.case, "patient", None)
    if patient is not None:
        for text in (getattr(patient, "full_name", ""), getattr(patient, "mrn", "")):
            if text:
                assert text not in body


def test_allowed_is_200_json_not_stored(client_as, preview_recipient, ct_study):
    response = client_as(preview_recipient).get(_access(ct_study))
    assert response.status_code == 200
    assert response.json() == {"access": True, "diagnostic": False}  # a preview-only share
    assert "no-store" in response["Cache-Control"]
    _no_phi(response, ct_study)


@pytest.mark.parametrize("ending", ["revoked", "expired"])
def test_a_revoked_or_expired_share_is_refused_with_the_message(client_as, clinician_a, preview_recipient, ct_study,
                                                                ending):
    from apps.sharing import services
    from apps.sharing.models import Grant

    client = client_as(preview_recipient)
    assert client.get(_access(ct_study)).status_code == 200
    if ending == "revoked":
        services.grants_revoke(grants=[preview_recipient.grant], by=clinician_a, reason="test")
    else:
        Grant.objects.filter(pk=preview_recipient.grant.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    refused = client.get(_access(ct_study))
    assert refused.status_code in (403, 404)
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["error"] in ("gone", "denied") and refused.json()["message"]
    assert "no-store" in refused["Cache-Control"]
    _no_phi(refused, ct_study)


def test_the_end_of_a_tumor_board_is_refused(org_a, clinician_a, client_as, ct_study):
    from apps.cases import services

    participant = member(org_a, Role.EXTERNAL_CONSULTANT, email="board-guest@outside.example")
    board = BoardSessionFactory(organization=org_a, host=clinician_a)
    board.cases.add(ct_study.case)
    board.participants.add(participant)
    client = client_as(participant)
    assert client.get(_access(ct_study)).status_code == 404  # not yet live: nothing to see
    services.board_start(board=board, by=clinician_a)
    assert client.get(_page(ct_study)).status_code == 200
    allowed = client.get(_access(ct_study))
    assert allowed.status_code == 200 and allowed.json() == {"access": True, "diagnostic": False}
    services.board_end(board=board, by=clinician_a)
    ended = client.get(_access(ct_study))
    assert ended.status_code in (403, 404) and ended.json()["message"]
    _no_phi(ended, ct_study)


def test_outsiders_and_anonymous_get_404_and_a_missing_study_too(client, client_as, admin_b, ct_study):
    assert client_as(admin_b).get(_access(ct_study)).status_code == 404
    assert client.get(_access(ct_study)).status_code == 404
    missing = reverse("viewer:access", kwargs={"study_id": "0" * 8 + "-0000-4000-8000-" + "0" * 12})
    assert client_as(admin_b).get(missing).status_code == 404


def test_staff_without_view_images_get_403_json(client_as, admin_a, ct_study):
    refused = client_as(admin_a).get(_access(ct_study))
    assert refused.status_code == 403 and refused.json()["error"] == "denied"


@pytest.mark.parametrize("who", ["staff", "consultant"])
def test_the_check_is_one_decision_and_reads_no_image(client_as, clinician_a, preview_recipient, ct_study, who):
    """Asked every few seconds by every open viewer: the memberships (the middleware's) and a
    reader's grants read once, and no instance, file or series read (nothing rendered)."""
    status, queries = page_queries(client_as(clinician_a if who == "staff" else preview_recipient), _access(ct_study))
    assert status == 200
    assert len(reads_of(queries, "organizations_membership")) == 1
    assert len(policy_grant_reads(queries)) == (1 if who == "consultant" else 0)
    for table in ("imaging_instance", "imaging_blob", "imaging_series", "viewer_viewersession"):
        assert not reads_of(queries, table), table


def test_the_check_is_not_activity(client_as, clinician_a, ct_study):
    """A viewer left open is still signed out after the idle limit, and its session still closed by
    the idle sweep: the timer's check refreshes neither."""
    client = client_as(clinician_a)
    assert client.get(_page(ct_study)).status_code == 200
    viewer_session = ViewerSession.objects.get()
    seen = viewer_session.last_seen_at
    session = client.session
    earlier = time.time() - 120
    session[LAST_SEEN] = earlier
    session.save()
    opened = AuditEvent.objects.count()
    assert client.get(_access(ct_study)).status_code == 200
    assert client.session[LAST_SEEN] == earlier
    viewer_session.refresh_from_db()
    assert viewer_session.last_seen_at == seen
    assert AuditEvent.objects.count() == opened  # an allowed check records nothing
    # a frame is activity (as before)
    client.get(reverse("viewer:frame", kwargs={"instance_id": ct_study.phantom_instances[0].public_id}))
    assert client.session[LAST_SEEN] > earlier


def test_the_page_tells_the_viewer_where_and_how_often_to_check(client_as, clinician_a, ct_study, settings):
    settings.LIGHTBOX_VIEWER_ACCESS_CHECK_SECONDS = 7
    body = client_as(clinician_a).get(_page(ct_study)).content.decode()
    assert f'data-access-url="{_access(ct_study)}"' in body
    assert 'data-access-check-ms="7000"' in body


# ------------------------------------------------------------------ the Mode of a lossy original

def _mode(body: str) -> tuple[str, str]:
    """The Mode's kind (data-kind) and text under Details."""
    match = re.search(r'<dd id="meta-mode"[^>]*data-kind="(\w+)">([^<]*)</dd>', body)
    assert match, "no Mode"
    return match.group(1), match.group(2)


def _add_instance(study, transfer_syntax: str):
    series = SeriesFactory(organization=study.organization, study=study, modality="NM")
    return InstanceFactory(organization=study.organization, series=series, transfer_syntax_uid=transfer_syntax)


def test_a_lossless_study_is_of_diagnostic_quality_to_a_reader_of_originals(client_as, clinician_a, ct_study):
    _add_instance(ct_study, J2K_LOSSY_OR_LOSSLESS)  # decided by its codestream: not known lossy yet
    _add_instance(ct_study, EXPLICIT_LE)
    assert _mode(client_as(clinician_a).get(_page(ct_study)).content.decode()) == (
        "diagnostic", "Diagnostic quality available")


def test_a_lossy_transfer_syntax_never_says_diagnostic_quality(client_as, clinician_a, ct_study):
    _add_instance(ct_study, JPEG_BASELINE)
    kind, text = _mode(client_as(clinician_a).get(_page(ct_study)).content.decode())
    assert kind == "lossy" and text == "Original with lossy compression - not of diagnostic quality"


def test_an_original_rendition_labelled_lossy_never_says_diagnostic_quality(client_as, clinician_a, ct_study):
    # the renditions read each file's header and JPEG 2000 codestream (a .91 coded irreversibly)
    _add_instance(ct_study, J2K_LOSSY_OR_LOSSLESS)
    Rendition.objects.create(organization=ct_study.organization, study=ct_study, kind=Kind.ORIGINAL,
                             label=Label.LOSSY_SOURCE, lossy=True)
    kind, text = _mode(client_as(clinician_a).get(_page(ct_study)).content.decode())
    assert kind == "lossy" and "Diagnostic quality available" not in text


def test_in_spanish_the_lossy_mode_is_not_diagnostic_quality(client_as, clinician_a, ct_study):
    _add_instance(ct_study, JPEG_BASELINE)
    client = client_as(clinician_a)
    body = client.get(_page(ct_study), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    kind, text = _mode(body)
    assert kind == "lossy" and "Calidad diagnóstica disponible" not in text


def test_a_preview_reader_is_told_previews_only_even_of_a_lossy_study(client_as, preview_recipient, ct_study):
    _add_instance(ct_study, JPEG_BASELINE)
    assert _mode(client_as(preview_recipient).get(_page(ct_study)).content.decode()) == ("preview", "Previews only")
