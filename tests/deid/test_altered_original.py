"""A de-identified export reading an original whose stored file was altered (its encrypted bytes
changed since it was written: the blob's integrity check fails, InvalidTag) left it out as
"could not be read as DICOM" and recorded nothing (found by review). Now the file is excluded as
an integrity failure (its own reason, shown on the export's page and in the zip's MANIFEST), the
read is recorded for the security officer once (``blob.integrity_failed``, read ``deid_export``),
and the export finishes ready with the other files, as for any excluded file. A de-identified file
altered after the export was made stops the zip's download short (the stream is aborted, never a
complete-looking zip), recorded (read ``zip``)."""

from __future__ import annotations

import io
import zipfile

import pytest
from cryptography.exceptions import InvalidTag
from django.urls import reverse

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from apps.deid.models import DeidExport, DeidExportFile, Outcome, State
from apps.deid.profile import Reason
from apps.deid.services import deid_export_start
from apps.deid.tasks import deid_export_task
from apps.imaging.models import Instance
from tests.deid.test_exports import ct_folder, world  # noqa: F401 - the fixtures
from tests.factories import blob_alter

pytestmark = pytest.mark.django_db


def _run(world) -> DeidExport:  # noqa: F811 - the fixture
    export = deid_export_start(study=world["study"], by=world["clinician"], pseudonym="PSEUDO-ALT", enqueue=False)
    deid_export_task.apply(args=(export.pk,), throw=True)
    export.refresh_from_db()
    return export


def test_an_altered_original_is_excluded_as_such_recorded_once_and_the_export_finishes(
        world, client_as):  # noqa: F811 - the fixture
    altered = Instance.objects.select_related("blob").get(study=world["study"], instance_number=2)
    blob_alter(altered.blob)

    export = _run(world)

    # the export finishes as with any excluded file: ready, the other files exported
    assert export.state == State.READY
    assert (export.files_total, export.files_exported, export.files_excluded) == (5, 3, 2)  # and the burned-in one
    row = DeidExportFile.objects.get(export=export, instance=altered)
    assert (row.outcome, row.reason, row.blob_id) == (Outcome.EXCLUDED, Reason.INTEGRITY_FAILED, None)
    # recorded once, for the image, on behalf of who started the export; no patient data
    event = AuditEvent.objects.get(action=A.BLOB_INTEGRITY_FAILED)
    assert event.outcome == "failed" and event.actor_id == world["clinician"].pk
    assert event.organization_id == world["org"].pk
    assert (event.target_type, event.target_id) == ("instance", str(altered.public_id))
    assert event.details == {"read": "deid_export", "export": str(export.public_id)}
    # a re-run (the task redelivered) reads nothing again and records nothing more
    deid_export_task.apply(args=(export.pk,), throw=True)
    assert AuditEvent.objects.filter(action=A.BLOB_INTEGRITY_FAILED).count() == 1

    client = client_as(world["clinician"])
    page = client.get(export.get_absolute_url()).content.decode()
    assert "failed its integrity check" in page and "could not be read as DICOM" not in page
    download = client.get(reverse("deid:export_download", kwargs={"deidexport_id": export.public_id}))
    data = b"".join(download.streaming_content)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    [manifest] = [n for n in zf.namelist() if n.endswith("/MANIFEST.txt")]
    text = zf.read(manifest).decode()
    assert "image 2  The stored file failed its integrity check" in text


def test_a_de_identified_file_altered_after_the_export_stops_its_download_short_and_is_recorded(
        world, client_as):  # noqa: F811 - the fixture
    export = _run(world)
    rows = list(DeidExportFile.objects.filter(export=export, outcome=Outcome.EXPORTED)
                .select_related("blob", "instance").order_by("path"))
    altered = rows[1]
    blob_alter(altered.blob)
    response = client_as(world["clinician"]).get(
        reverse("deid:export_download", kwargs={"deidexport_id": export.public_id}))
    assert response.status_code == 200  # sent before the first byte: it cannot change now
    got = []
    with pytest.raises(InvalidTag):
        for chunk in response.streaming_content:
            got.append(chunk)
    # the stream stops short: fewer bytes than announced, never a complete-looking zip
    assert 0 < sum(map(len, got)) < int(response["Content-Length"])
    event = AuditEvent.objects.get(action=A.BLOB_INTEGRITY_FAILED)
    assert (event.target_type, event.target_id) == ("instance", str(altered.instance.public_id))
    assert event.details == {"read": "zip", "scope": "deid_export", "export": str(export.public_id)}
    assert event.actor_id == world["clinician"].pk and event.outcome == "failed"
    ended = AuditEvent.objects.get(action__in=(A.DOWNLOAD_COMPLETED, A.DOWNLOAD_INCOMPLETE),
                                   target_id=str(export.public_id))
    assert ended.action == A.DOWNLOAD_INCOMPLETE and ended.details["completed"] is False
