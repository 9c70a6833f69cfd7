"""A download is in the trail before its first byte: download.started (scope, rendition, grant,
range; the lossy source when there is one), then download.completed or download.incomplete when
the transfer ends. It was recorded only when the transfer ended (the body iterator's ``finally``):
a worker killed or redeployed during a multi-GB case zip left nothing, though bytes went out, and
staff downloading on their role are counted nowhere else. One started event per response (a
resume records one per request); a HEAD and a refused Range (416) record nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.audit import actions as A
from apps.audit.models import AuditEvent
from tests.audit.test_page import _visible_cells
from tests.renditions.test_all_lossy_case_zip import _lossless, lossy_case  # noqa: F401 - a fixture
from tests.renditions.test_lossy_source_download_audit import ALL_LOSSY

pytestmark = pytest.mark.django_db


def _url(study, rendition="preview") -> str:
    return f"/studies/{study.public_id}/download/?rendition={rendition}"


def _downloads(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(pk__gt=before, action__startswith="download.").order_by("seq"))


def _last() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_a_staff_download_is_recorded_before_its_first_byte(client_as, clinician_a, ct_study):
    before = _last()
    response = client_as(clinician_a).get(_url(ct_study))
    assert response.status_code == 200
    body = iter(response.streaming_content)
    assert next(body)[:2] == b"PK"
    # the process serving it may be killed now: the trail already says the transfer began
    [started] = _downloads(before)
    size = int(response["Content-Length"])
    assert started.action == A.DOWNLOAD_STARTED
    assert started.actor_id == clinician_a.pk and started.organization_id == ct_study.organization_id
    assert started.details == {"scope": "study", "rendition": "preview", "grant": "", "total_bytes": size,
                               "range_start": 0, "range_end": size - 1}
    for _chunk in body:
        pass
    started_again, completed = _downloads(before)
    assert (started_again.pk, completed.action) == (started.pk, A.DOWNLOAD_COMPLETED)
    assert completed.details["bytes_sent"] == size


def test_each_response_of_a_resumed_download_records_one_start(client_as, clinician_a, ct_study):
    c = client_as(clinician_a)
    first = c.get(_url(ct_study))
    etag, size = first["ETag"], int(first["Content-Length"])
    b"".join(first.streaming_content)
    before = _last()
    rest = c.get(_url(ct_study), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=etag)
    assert rest.status_code == 206
    b"".join(rest.streaming_content)
    assert [(e.action, e.details["range_start"], e.details["range_end"]) for e in _downloads(before)] == [
        (A.DOWNLOAD_STARTED, 100, size - 1), (A.DOWNLOAD_COMPLETED, 100, size - 1)]


def test_head_and_a_refused_range_record_no_start(client_as, clinician_a, ct_study):
    c = client_as(clinician_a)
    before = _last()
    head = c.head(_url(ct_study))
    assert head.status_code == 200
    size, etag = int(head["Content-Length"]), head["ETag"]
    assert c.get(_url(ct_study), HTTP_RANGE=f"bytes={size + 10}-", HTTP_IF_RANGE=etag).status_code == 416
    assert _downloads(before) == []


def test_the_start_of_a_lossless_zip_of_lossy_originals_says_so(lossy_case, clinician_a, admin_a,  # noqa: F811
                                                                client_as):
    """The start says what goes out as the end does (``details.lossy_source``, c2ea08c), and the
    audit page labels it so."""
    before = _last()
    _lossless(client_as(clinician_a), lossy_case)
    started, completed = _downloads(before)
    assert started.action == A.DOWNLOAD_STARTED and completed.action == A.DOWNLOAD_COMPLETED
    assert started.details["lossy_source"] == completed.details["lossy_source"] == "all"
    assert started.details["rendition"] == "lossless" and started.details["scope"] == "case"
    html = client_as(admin_a).get(reverse("audit:event_list"), {"action": A.DOWNLOAD_STARTED}).content.decode()
    (row,) = _visible_cells(html)
    assert row[2] == f"{A.label(A.DOWNLOAD_STARTED)}{ALL_LOSSY}{A.DOWNLOAD_STARTED}"
