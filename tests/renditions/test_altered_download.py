"""A download whose image's stored file was altered (its encrypted bytes changed since it was
written: the blob's integrity check fails, InvalidTag) was a 500 before the first byte, or a
zip cut off with nothing recorded of why (found by review). Now:

- found while the package is built (an original read for its CRC, before the first byte): 409
  and a page saying so, nothing sent, nothing counted, ``blob.integrity_failed`` recorded;
- found while the zip is sent (its status is sent by then): the stream is aborted as on a storage
  error, so the client has fewer bytes than the Content-Length said (never a complete-looking zip
  missing a file), ``blob.integrity_failed`` recorded once (read ``zip``) and the transfer
  recorded download.incomplete."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from cryptography.exceptions import InvalidTag
from django.test import AsyncClient, Client
from django.urls import reverse

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.imaging.models import Instance
from apps.renditions.models import Kind, RenditionFile
from tests.factories import blob_alter

pytestmark = pytest.mark.django_db


def _study_url(study, kind: str) -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _case_url(study, kind: str) -> str:
    return reverse("renditions:case_download", kwargs={"case_id": study.case.public_id}) + f"?rendition={kind}"


def _third(study) -> Instance:
    return Instance.objects.filter(study=study).order_by("instance_number", "id")[2]


def _alter_file_of(instance: Instance, kind: str) -> None:
    """Alter the stored file a ``kind`` package holds for ``instance`` (the original is the
    instance's own blob)."""
    blob_alter(RenditionFile.objects.select_related("blob").get(instance=instance, kind=kind).blob)


def _assert_cut_short_and_recorded(response, got: list[bytes], altered: Instance, user, scope: str, kind: str,
                                   target) -> None:
    assert response.status_code == 200  # sent before the first byte: it cannot change now
    assert sum(map(len, got)) < int(response["Content-Length"])  # short: never taken for a complete zip
    event = AuditEvent.objects.get(action=A.BLOB_INTEGRITY_FAILED)
    assert (event.target_type, event.target_id) == ("instance", str(altered.public_id))
    assert event.details == {"read": "zip", "scope": scope, "rendition": kind}
    assert event.outcome == "failed" and event.actor_id == user.pk
    assert event.organization_id == altered.organization_id
    [ended] = AuditEvent.objects.filter(action__in=(A.DOWNLOAD_COMPLETED, A.DOWNLOAD_INCOMPLETE),
                                        target_id=str(target.public_id))
    assert ended.action == A.DOWNLOAD_INCOMPLETE and ended.details["completed"] is False


@pytest.mark.parametrize(("scope", "kind"), [("study", Kind.ORIGINAL), ("study", Kind.PREVIEW),
                                             ("case", Kind.ORIGINAL)])
def test_a_zip_stops_short_at_an_altered_file_and_it_is_recorded(ct_study, clinician_a, client_as, scope, kind):
    altered = _third(ct_study)
    _alter_file_of(altered, kind)
    url = _study_url(ct_study, kind) if scope == "study" else _case_url(ct_study, kind)
    response = client_as(clinician_a).get(url)
    got = []
    with pytest.raises(InvalidTag):
        for chunk in response.streaming_content:
            got.append(chunk)
    assert got  # the files before it went out
    _assert_cut_short_and_recorded(response, got, altered, clinician_a, scope, kind,
                                   ct_study if scope == "study" else ct_study.case)


def test_under_asgi_a_zip_stops_short_at_an_altered_file_and_it_is_recorded(ct_study, clinician_a):
    altered = _third(ct_study)
    _alter_file_of(altered, Kind.PREVIEW)
    client = AsyncClient()
    client.force_login(clinician_a)
    got: list[bytes] = []

    async def fetch():
        response = await client.get(_study_url(ct_study, Kind.PREVIEW))
        assert response.is_async
        with pytest.raises(InvalidTag):
            async for chunk in response.streaming_content:
                got.append(chunk)
        return response

    response = async_to_sync(fetch)()
    _assert_cut_short_and_recorded(response, got, altered, clinician_a, "study", Kind.PREVIEW, ct_study)


def test_an_altered_original_found_while_the_zip_is_built_is_said_before_any_byte(ct_study, clinician_a):
    """An original whose rendition row is not made yet is read (its CRC) before the first byte."""
    altered = _third(ct_study)
    RenditionFile.objects.filter(instance=altered, kind=Kind.ORIGINAL).delete()
    blob_alter(altered.blob)
    client = Client(raise_request_exception=False)
    client.force_login(clinician_a)

    response = client.get(_study_url(ct_study, Kind.ORIGINAL))

    assert response.status_code == 409 and response["Content-Type"].startswith("text/html")
    assert "no-store" in response["Cache-Control"] and "Content-Disposition" not in response
    html = response.content.decode()
    assert 'data-testid="download-integrity-failed"' in html and "failed its integrity check" in html
    assert ct_study.get_absolute_url() in html  # the way back
    event = AuditEvent.objects.get(action=A.BLOB_INTEGRITY_FAILED)
    assert (event.target_type, event.target_id) == ("instance", str(altered.public_id))
    assert event.details == {"read": "zip", "scope": "study", "rendition": Kind.ORIGINAL}
    assert not AuditEvent.objects.filter(action__startswith="download.").exists()  # nothing sent
