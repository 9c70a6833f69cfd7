"""The tus 1.0.0 server, in process (the end-to-end upload over uvicorn is test_e2e_upload.py)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.imaging.models import IngestJob, Study, Upload, UploadState
from apps.organizations.models import Role
from tests.factories import CaseFactory, member

pytestmark = pytest.mark.django_db

ROOT = "/api/v1/uploads/"
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def _meta(**kv) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kv.items())


@pytest.fixture
def uploader(org_a):
    return member(org_a, Role.RADIOLOGIST, email="rad@alpha.example")


@pytest.fixture
def client(uploader):
    c = Client(enforce_csrf_checks=False)
    c.force_login(uploader)
    return c


def _create(client, length, **meta):
    r = client.post(ROOT, HTTP_UPLOAD_LENGTH=str(length), HTTP_UPLOAD_METADATA=_meta(**meta), **TUS)
    assert r.status_code == 201, r.content
    return r["Location"].split("testserver", 1)[-1]


def _patch(client, url, offset, data, **extra):
    return client.generic("PATCH", url, data, content_type="application/offset+octet-stream",
                          HTTP_UPLOAD_OFFSET=str(offset), **TUS, **extra)


def test_options_advertises_extensions_and_limit(client, org_a):
    r = client.options(ROOT)
    assert r.status_code == 204
    assert r["Tus-Version"] == "1.0.0"
    assert set(r["Tus-Extension"].split(",")) >= {"creation", "creation-with-upload", "termination", "checksum",
                                                   "expiration"}
    assert "sha1" in r["Tus-Checksum-Algorithm"]
    assert r["Tus-Max-Size"] == str(org_a.upload_max_bytes)


def test_upload_in_chunks_then_ingest(client, small_ct, django_capture_on_commit_callbacks):
    data = sorted(small_ct.iterdir())[0].read_bytes()
    url = _create(client, len(data), filename="one.dcm")
    assert client.head(url, **TUS)["Upload-Offset"] == "0"
    half = len(data) // 2
    assert _patch(client, url, 0, data[:half]).status_code == 204
    r = client.head(url, **TUS)
    assert (r["Upload-Offset"], r["Upload-Length"]) == (str(half), str(len(data)))
    assert "Upload-Expires" in r
    assert _patch(client, url, 0, b"x").status_code == 409   # wrong offset
    with django_capture_on_commit_callbacks(execute=True):
        r = _patch(client, url, half, data[half:])
    assert r["Upload-Offset"] == str(len(data))
    upload = Upload.objects.get()
    assert upload.state == UploadState.COMPLETE
    job = IngestJob.objects.get(upload=upload)
    assert job.files_ingested == 1
    study = Study.objects.get()
    assert study.instances.get().sha256 == hashlib.sha256(data).hexdigest()
    status = client.get(url).json()
    assert status["job"]["studies"][0]["id"] == str(study.public_id)
    assert AuditEvent.objects.filter(action="imaging.upload_completed").exists()


def test_creation_with_upload_and_case(client, org_a, small_ct, django_capture_on_commit_callbacks):
    case = CaseFactory(organization=org_a)
    data = sorted(small_ct.iterdir())[1].read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        r = client.generic("POST", ROOT, data, content_type="application/offset+octet-stream",
                           HTTP_UPLOAD_LENGTH=str(len(data)),
                           HTTP_UPLOAD_METADATA=_meta(filename="a.dcm", case=str(case.public_id)), **TUS)
    assert r.status_code == 201 and r["Upload-Offset"] == str(len(data))
    assert Study.objects.get().case == case


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_closed_case_takes_no_upload(client, org_a, uploader, language):
    """The upload page offers open cases only (policy.upload_cases); the tus server takes the same
    rule: a closed case named in the metadata is refused with a reason, the denial recorded, and
    no upload made."""
    from apps.cases.models import CaseStatus
    from apps.sharing import policy

    closed = CaseFactory(organization=org_a, status=CaseStatus.CLOSED)
    assert closed not in policy.upload_cases(uploader, org_a)
    uploader.language = language
    uploader.save(update_fields=["language"])
    for body in (b"", b"DICM"):
        r = client.generic("POST", ROOT, body, content_type="application/offset+octet-stream",
                           HTTP_UPLOAD_LENGTH="4",
                           HTTP_UPLOAD_METADATA=_meta(filename="a.dcm", case=str(closed.public_id)), **TUS)
        assert r.status_code == 403, r.content
        assert r["Lightbox-Refusal"] == "case_closed"  # the upload page says so in its own words
        assert r.content.decode() == {"en": "This case is closed: reopen it to upload studies into it.",
                                      "es": "Este caso está cerrado: reábralo para subir estudios a él."}[language]
    assert not Upload.objects.exists()
    assert not AuditEvent.objects.filter(action="imaging.upload_created").exists()
    assert AuditEvent.objects.filter(action="access.denied", outcome="denied").count() == 2


def test_the_upload_page_offers_open_cases_only(client, org_a):
    from apps.cases.models import CaseStatus

    open_case = CaseFactory(organization=org_a, title="Still open")
    CaseFactory(organization=org_a, title="Already closed", status=CaseStatus.CLOSED)
    page = client.get("/studies/upload/")
    assert page.status_code == 200
    assert list(page.context["cases"]) == [open_case]


def test_checksum_mismatch_is_460_and_rolls_back(client):
    url = _create(client, 10)
    bad = "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    assert _patch(client, url, 0, b"hello", HTTP_UPLOAD_CHECKSUM=bad).status_code == 460
    assert client.head(url, **TUS)["Upload-Offset"] == "0"
    good = "sha1 " + base64.b64encode(hashlib.sha1(b"hello").digest()).decode()
    assert _patch(client, url, 0, b"hello", HTTP_UPLOAD_CHECKSUM=good)["Upload-Offset"] == "5"


def test_limits_and_protocol_errors(client, org_a):
    org_a.upload_max_bytes = 100
    org_a.save()
    assert client.post(ROOT, HTTP_UPLOAD_LENGTH="101", **TUS).status_code == 413
    assert client.post(ROOT, HTTP_UPLOAD_LENGTH="10").status_code == 412   # no Tus-Resumable
    url = _create(client, 4)
    assert _patch(client, url, 0, b"too long").status_code == 413
    assert client.generic("PATCH", url, b"ab", content_type="text/plain", HTTP_UPLOAD_OFFSET="0",
                          **TUS).status_code == 415


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "-1", "1.5", " 3", ""])
def test_a_length_or_offset_that_is_not_written_in_digits_0_to_9_is_a_400(client, value):
    """'²' passes str.isdigit() but not int(); '٣' (Arabic-Indic three) passes both."""
    assert client.post(ROOT, HTTP_UPLOAD_LENGTH=value, **TUS).status_code == 400
    url = _create(client, 3)
    assert _patch(client, url, value, b"abc").status_code == 400
    assert Upload.objects.get().offset == 0


def test_a_length_or_offset_of_thousands_of_digits_is_too_large_or_a_conflict(client, org_a):
    org_a.upload_max_bytes = 100
    org_a.save()
    huge = "9" * 5000  # int() refuses more than 4,300 digits
    assert client.post(ROOT, HTTP_UPLOAD_LENGTH=huge, **TUS).status_code == 413
    assert client.post(ROOT, HTTP_UPLOAD_LENGTH="0" * 5000 + "3", **TUS).status_code == 201  # still 3
    url = _create(client, 3)
    assert _patch(client, url, huge, b"abc").status_code == 409
    assert _patch(client, url, "0" * 5000, b"abc")["Upload-Offset"] == "3"


@pytest.mark.parametrize("key", ["filename", "name", "filetype", "case"])
def test_metadata_holding_a_nul_character_is_malformed(client, key):
    """PostgreSQL stores no NUL in text: the name and the kept metadata were a 500 there."""
    response = client.post(ROOT, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_meta(**{key: "scan\x00.dcm"}), **TUS)
    assert response.status_code == 400
    assert response.content == b"malformed Upload-Metadata"
    assert not Upload.objects.exists()


def test_termination_deletes_staging(client):
    url = _create(client, 10)
    _patch(client, url, 0, b"12345")
    assert client.delete(url, **TUS).status_code == 204
    assert client.head(url, **TUS).status_code == 404
    assert AuditEvent.objects.filter(action="imaging.upload_deleted").exists()


def test_expired_upload_is_gone(client):
    url = _create(client, 10)
    Upload.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert client.head(url, **TUS).status_code == 410


def test_roles_and_tenants(org_a, org_b, client_as, client):
    url = _create(client, 10)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT)
    refused = client_as(consultant).post(ROOT, HTTP_UPLOAD_LENGTH="10", **TUS)
    assert refused.status_code == 403 and refused["Content-Type"].startswith("text/plain")  # not the HTML page
    assert refused["Tus-Resumable"] == "1.0.0" and b"may not upload" in refused.content
    assert AuditEvent.objects.filter(actor=consultant, outcome="denied").exists()  # still recorded
    assert client_as(None).post(ROOT, HTTP_UPLOAD_LENGTH="10", **TUS).status_code == 403
    other = member(org_b, Role.RADIOLOGIST)
    assert client_as(other).head(url, **TUS).status_code == 404
    assert _patch(client_as(other), url, 0, b"x").status_code == 404
    # a colleague sees the status but cannot write into someone else's upload
    colleague = member(org_a, Role.CLINICIAN)
    assert client_as(colleague).get(url).status_code == 200
    assert _patch(client_as(colleague), url, 0, b"x").status_code == 404


def test_csrf_is_enforced_for_session_uploads(uploader):
    c = Client(enforce_csrf_checks=True)
    c.force_login(uploader)
    assert c.post(ROOT, HTTP_UPLOAD_LENGTH="10", **TUS).status_code == 403
    c.get("/studies/upload/")
    token = c.cookies["csrftoken"].value
    assert c.post(ROOT, HTTP_UPLOAD_LENGTH="10", HTTP_X_CSRFTOKEN=token, **TUS).status_code == 201


def test_expiry_task_deletes_unfinished_staging(client):
    from apps.imaging import staging
    from apps.imaging.tasks import uploads_expire_task

    url = _create(client, 10)
    _patch(client, url, 0, b"12345")
    upload = Upload.objects.get()
    path = staging.staging_path(upload.staging_name)
    assert path.exists()
    assert uploads_expire_task() == 0           # not expired yet
    Upload.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert uploads_expire_task() == 1
    assert not path.exists()
    assert Upload.objects.get().state == UploadState.EXPIRED
    assert AuditEvent.objects.filter(action="imaging.upload_expired").exists()


def test_expiry_leaves_an_upload_that_completed_meanwhile_alone(client, monkeypatch):
    """The sweep lists expired uploads, then claims each (conditional UPDATE). An upload that left
    ``uploading`` in between (its last chunk completed it, or another sweep expired it) is not
    the sweep's: its staging file stays for the ingest job, nothing is recorded or counted."""
    from apps.imaging import staging, uploads
    from apps.imaging.models import UploadQuerySet

    url = _create(client, 10)
    _patch(client, url, 0, b"12345")
    upload = Upload.objects.get()
    Upload.objects.update(expires_at="2000-01-01T00:00:00Z")
    listed = list(Upload.objects.expired())
    Upload.objects.update(state=UploadState.COMPLETE)  # the last chunk landed after the listing
    monkeypatch.setattr(UploadQuerySet, "expired", lambda self, now=None: listed)
    assert uploads.uploads_expire() == 0
    assert staging.staging_path(upload.staging_name).exists()
    assert Upload.objects.get().state == UploadState.COMPLETE
    assert not AuditEvent.objects.filter(action="imaging.upload_expired").exists()


def test_a_new_staging_file_has_its_folder_entry_on_disk(client, monkeypatch):
    import os

    from apps.imaging import staging

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(staging.os, "fsync", fsync)
    _create(client, 10)
    path = staging.staging_path(Upload.objects.get().staging_name)
    assert path.exists() and synced == [os.path.realpath(path.parent)]


#: each refusal of the tus server: its status, the tus headers it keeps, and its text in English
#: and Spanish (the reader's language; the client acts on the status)
REFUSALS = {
    "no_tus_resumable": (412, {"Tus-Version": "1.0.0"}, "unsupported tus version: send Tus-Resumable: 1.0.0",
                         "versión de tus no admitida: envíe Tus-Resumable: 1.0.0"),
    "no_length": (400, {}, "Upload-Length is required (deferred length is not supported)",
                  "Upload-Length es obligatorio (no se admite la longitud diferida)"),
    "over_the_limit": (413, {"Lightbox-Refusal": "too_large"},
                       "larger than this organization's upload limit (100 bytes)",
                       "supera el límite de subida de esta organización (100 bytes)"),
    "bad_metadata": (400, {}, "malformed Upload-Metadata", "Upload-Metadata mal formado"),
    "unknown_case": (400, {}, "unknown case", "caso desconocido"),
    "offset_mismatch": (409, {"Upload-Offset": "0"},
                        "Upload-Offset does not match the upload's offset (0): resume from there",
                        "Upload-Offset no coincide con el desplazamiento de la subida (0): reanude desde ahí"),
    "checksum_mismatch": (460, {}, "checksum mismatch: the chunk was not kept",
                          "la suma de comprobación no coincide: el fragmento no se ha guardado"),
    "unsupported_checksum": (400, {}, "unsupported checksum algorithm",
                             "algoritmo de suma de comprobación no admitido"),
    "more_than_the_length": (413, {"Lightbox-Refusal": "over_length"}, "more bytes than Upload-Length",
                             "más bytes que Upload-Length"),
    "not_octet_stream": (415, {}, "Content-Type must be application/offset+octet-stream",
                         "Content-Type debe ser application/offset+octet-stream"),
    "expired": (410, {}, "this upload expired", "esta subida ha caducado"),
    "unknown_upload": (404, {}, "no such upload", "no existe esa subida"),
}


def _refuse(client, what: str, url: str):
    """One request that the server refuses as ``what`` (``url``: an upload of 10 bytes at offset 0)."""
    bad_sum = "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    unknown_case = "00000000-0000-0000-0000-000000000000"
    return {
        "no_tus_resumable": lambda: client.post(ROOT, HTTP_UPLOAD_LENGTH="10"),
        "no_length": lambda: client.post(ROOT, **TUS),
        "over_the_limit": lambda: client.post(ROOT, HTTP_UPLOAD_LENGTH="101", **TUS),
        "bad_metadata": lambda: client.post(ROOT, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA="filename ***",
                                            **TUS),
        "unknown_case": lambda: client.post(ROOT, HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_meta(
            case=unknown_case), **TUS),
        "offset_mismatch": lambda: _patch(client, url, 5, b"x"),
        "checksum_mismatch": lambda: _patch(client, url, 0, b"hello", HTTP_UPLOAD_CHECKSUM=bad_sum),
        "unsupported_checksum": lambda: _patch(client, url, 0, b"hello", HTTP_UPLOAD_CHECKSUM="crc32 AAAA"),
        "more_than_the_length": lambda: _patch(client, url, 0, b"x" * 11),
        "not_octet_stream": lambda: client.generic("PATCH", url, b"ab", content_type="text/plain",
                                                   HTTP_UPLOAD_OFFSET="0", **TUS),
        "expired": lambda: _patch(client, url, 0, b"x"),
        "unknown_upload": lambda: client.delete(f"{ROOT}{unknown_case}/", **TUS),
    }[what]()


@pytest.mark.parametrize("what", REFUSALS)
@pytest.mark.parametrize("how", ["user_language", "accept_language"])
@pytest.mark.parametrize("language", ["en", "es"])
def test_a_refusal_is_in_the_readers_language_with_its_tus_status_and_headers(client, org_a, uploader, what, how,
                                                                              language):
    """The text follows the signed-in user's language, or, without one, the browser's
    (Accept-Language); the status and the tus headers are the same in every language."""
    org_a.upload_max_bytes = 100
    org_a.save()
    url = _create(client, 10)
    if how == "user_language":
        uploader.language = language
        uploader.save(update_fields=["language"])
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "es" if language == "en" else "en"  # the user's own wins
    else:
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    if what == "expired":
        Upload.objects.update(expires_at="2000-01-01T00:00:00Z")
    status, headers, english, spanish = REFUSALS[what]
    r = _refuse(client, what, url)
    assert r.status_code == status
    assert r["Tus-Resumable"] == "1.0.0" and "no-store" in r["Cache-Control"]
    assert {name: r[name] for name in headers} == headers
    if "Lightbox-Refusal" not in headers:  # the page tells these by their status
        assert "Lightbox-Refusal" not in r
    assert r["Content-Type"] == "text/plain; charset=utf-8"
    assert r.content.decode() == {"en": english, "es": spanish}[language]
    assert Upload.objects.get().offset == 0  # nothing kept


@pytest.mark.parametrize(("language", "text"), [("en", "sign in first"), ("es", "inicie sesión primero")])
def test_a_request_without_a_session_is_refused_in_the_browsers_language(language, text):
    """The 403 says "sign in" in the browser's language; the upload page knows it by its
    Lightbox-Refusal header (static/js/upload.js), whatever the language of the text."""
    r = Client().post(ROOT, HTTP_UPLOAD_LENGTH="10", HTTP_ACCEPT_LANGUAGE=language, **TUS)
    assert r.status_code == 403 and r["Tus-Resumable"] == "1.0.0"
    assert r["Lightbox-Refusal"] == "signed_out"
    assert type(r["Lightbox-Refusal"]) is str  # a str subclass (the Refusal) fails WSGI servers
    assert r.content.decode() == text


def test_the_upload_page_tells_a_sign_out_by_its_header_not_by_its_text():
    """The page maps statuses to its own translated messages; the only server answer it reads
    beyond the status is the sign-out, and no longer by the English text."""
    from pathlib import Path

    from django.contrib.staticfiles import finders

    script = Path(finders.find("js/upload.js")).read_text(encoding="utf-8")
    assert 'getHeader("Lightbox-Refusal")' in script and '"signed_out"' in script
    assert "sign in first" not in script


def test_a_case_that_takes_no_upload_from_this_user_is_refused_with_its_code(client, org_a, monkeypatch):
    """An open case the policy still refuses (apps.imaging.uploads.upload_create) is named as such,
    not as a closed one nor as the organization's refusal."""
    from django.core.exceptions import PermissionDenied

    from apps.imaging import uploads

    def refuse(**kwargs):
        raise PermissionDenied

    monkeypatch.setattr(uploads, "upload_create", refuse)
    case = CaseFactory(organization=org_a)
    r = client.post(ROOT, HTTP_UPLOAD_LENGTH="4", HTTP_UPLOAD_METADATA=_meta(case=str(case.public_id)), **TUS)
    assert r.status_code == 403 and r["Lightbox-Refusal"] == "case_forbidden"
    assert r.content.decode() == "You may not upload studies into this case."


def test_the_organizations_refusal_carries_no_code(org_a, client_as):
    """A role that may not upload gets the page's general "may not upload" message (no code)."""
    r = client_as(member(org_a, Role.EXTERNAL_CONSULTANT, email="ext@alpha.example")).post(
        ROOT, HTTP_UPLOAD_LENGTH="4", **TUS)
    assert r.status_code == 403 and "Lightbox-Refusal" not in r


def test_the_upload_page_has_a_message_for_every_refusal_code():
    """Each Lightbox-Refusal code the server sends is mapped by upload.js to a text of the page."""
    import re
    from pathlib import Path

    from django.contrib.staticfiles import finders
    from django.template.loader import get_template

    from apps.imaging.tus import Refusal

    script = Path(finders.find("js/upload.js")).read_text(encoding="utf-8")
    mapping = dict(re.findall(r'"([a-z_]+)": strings\.(\w+)', script))
    assert set(mapping) == {code.value for code in Refusal}
    template = Path(get_template("imaging/upload.html").origin.name).read_text(encoding="utf-8")
    for key in mapping.values():  # dataset.caseClosed <- data-case-closed
        assert "data-" + re.sub(r"[A-Z]", lambda m: "-" + m.group().lower(), key) + "=" in template, key


@pytest.mark.parametrize(("url", "method", "allow"), [
    (ROOT, "get", "OPTIONS, POST"), (ROOT, "put", "OPTIONS, POST"), (ROOT, "delete", "OPTIONS, POST"),
    ("{upload}", "put", "GET, HEAD, PATCH, DELETE, OPTIONS"),
    ("{upload}", "post", "GET, HEAD, PATCH, DELETE, OPTIONS"),
    (ROOT + "00000000-0000-0000-0000-000000000000/", "put", "GET, HEAD, PATCH, DELETE, OPTIONS"),
])
def test_a_method_the_resource_does_not_answer_is_405_with_allow(client, url, method, allow):
    """RFC 9110 15.5.6: a 405 names the methods the resource answers (the same for every upload, so
    it is answered before the upload is looked up); those methods are not 405."""
    url = url.format(upload=_create(client, 10))
    r = getattr(client, method)(url, **TUS)
    assert r.status_code == 405 and r["Allow"] == allow and r["Tus-Resumable"] == "1.0.0"
    for allowed in allow.split(", "):
        assert client.generic(allowed, url, **TUS).status_code != 405, allowed
    assert Client().generic(method.upper(), url, **TUS).status_code == 405  # signed out too


def test_options_on_an_upload_still_advertises_tus(client):
    url = _create(client, 10)
    r = client.options(url, **TUS)
    assert r.status_code == 204 and r["Tus-Version"] == "1.0.0" and "termination" in r["Tus-Extension"]
    assert "Allow" not in r


@pytest.mark.parametrize("who", ["signed_out", "another_user"])
def test_options_on_an_upload_answers_anyone_and_says_nothing_of_the_upload(client, org_a, who):
    """tus discovery needs no session (as on the root); the answer is the same whether the upload
    exists or not, so it reveals nothing."""
    url = _create(client, 10)
    other = Client()
    if who == "another_user":
        other.force_login(member(org_a, Role.CLINICIAN))
    for target in (url, ROOT + "00000000-0000-0000-0000-000000000000/"):
        r = other.options(target, **TUS)
        assert r.status_code == 204 and r["Tus-Version"] == "1.0.0" and "termination" in r["Tus-Extension"]
        assert "Upload-Offset" not in r and "Upload-Length" not in r and not r.content


def test_the_status_json_is_as_the_schema_says(client):
    """GET on an upload answers the fields apps.imaging.openapi documents (UploadStatus)."""
    from apps.imaging.openapi import UPLOAD_STATUS

    data = client.get(_create(client, 10)).json()
    assert set(data) == set(UPLOAD_STATUS["properties"]) == set(UPLOAD_STATUS["required"])
