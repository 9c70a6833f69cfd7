"""The tus upload endpoint (apps.imaging.tus) in the OpenAPI schema. It is a plain Django view,
which drf-spectacular does not see, so a client written from the schema would not know it exists:
this post-processing hook adds its paths, methods, headers and statuses. Paths, methods, refusal
codes, version, extensions and checksum algorithms are read from apps.imaging.urls and
apps.imaging.tus; the statuses are written out here (tests/core/test_api_review.py checks them).
Runs after apps.core.api.schema_error_responses, which defines the ``Error`` schema used here."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.urls import reverse

from apps.imaging import tus
from apps.imaging.models import FAILURE_MESSAGES, NOTHING_IMPORTED, JobState

TAGS = ["v1"]
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_BINARY = {tus.OCTET: {"schema": {"type": "string", "format": "binary"}}}
_SESSION = {"cookieAuth": []}


def _header(name: str, description: str, *, required: bool = False, **schema: Any) -> dict:
    return {"in": "header", "name": name, "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def _out(description: str, **schema: Any) -> dict:
    return {"description": description, "schema": schema or {"type": "string"}}


TUS_RESUMABLE = _header("Tus-Resumable", "The tus version the client speaks.", required=True,
                        type="string", enum=[tus.TUS_VERSION])
CSRF_TOKEN = _header("X-CSRFToken", "The session's CSRF token (the `csrftoken` cookie).", required=True)
CHECKSUM = _header("Upload-Checksum", "`<algorithm> <base64 digest>` of this request's body; "
                   f"algorithms: {', '.join(tus.CHECKSUMS)}. A mismatch is 460 and nothing is kept.")
METADATA = _header(
    "Upload-Metadata", "Comma-separated `key base64(value)` pairs. Kept: `filename` (or `name`), "
    "`filetype` (or `type`), and `case`: the `public_id` of an open case of the active organization to "
    "file the studies under.")

RESUMABLE_OUT = {"Tus-Resumable": _out("The server's tus version.", type="string", enum=[tus.TUS_VERSION])}
OFFSET_OUT = {"Upload-Offset": _out("Bytes received so far.", type="integer", minimum=0)}
EXPIRES_OUT = {"Upload-Expires": _out("When an unfinished upload is removed (RFC 9110 date); each "
                                      "append moves it.")}


def _refusal_out(*codes: tus.Refusal) -> dict:
    """The Lightbox-Refusal header of a refusal that may carry one of ``codes``."""
    return {"Lightbox-Refusal": _out(
        "A code for the refusal, for clients that explain it in their own words (the text is in the "
        "reader's language): " + ", ".join(f"`{code}`" for code in codes) + ".",
        type="string", enum=[code.value for code in codes])}


def _refusal(description: str, *, extra: dict | None = None) -> dict:
    """A tus refusal: plain text in the reader's language, its tus headers, maybe a code."""
    return {"description": description, "headers": {**RESUMABLE_OUT, **(extra or {})}, "content": _TEXT}


_GATE = "The access gate and the CSRF check answer JSON instead."
FORBIDDEN = {
    "description": "Refused: not signed in (`Lightbox-Refusal: signed_out`), not a member of an "
                   "organization, a role that may not upload, or a case closed (`case_closed`) or "
                   "not open to this user's uploads (`case_forbidden`). " + _GATE,
    "headers": {**RESUMABLE_OUT, **_refusal_out(tus.Refusal.SIGNED_OUT, tus.Refusal.CASE_CLOSED,
                                                tus.Refusal.CASE_FORBIDDEN)},
    "content": {**_TEXT, "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
SIGNED_OUT = {**FORBIDDEN, "description": "Not signed in (`Lightbox-Refusal: signed_out`). " + _GATE,
              "headers": {**RESUMABLE_OUT, **_refusal_out(tus.Refusal.SIGNED_OUT)}}
APPEND_FORBIDDEN = {
    **FORBIDDEN,
    "description": "Not signed in (`Lightbox-Refusal: signed_out`), or the policy, asked again before "
                   "each append, refuses it: the case was closed (`case_closed`) or no longer takes this "
                   "user's uploads (`case_forbidden`), or the user's role may no longer upload. " + _GATE,
}
PRECONDITION = _refusal("Tus-Resumable missing or another version.",
                        extra={"Tus-Version": _out("The versions the server speaks.")})
NOT_FOUND = _refusal("No such upload for this user (other users' and organizations' uploads "
                     "included; for GET, any upload to whoever is not staff of its organization), or it "
                     "was terminated.")
GONE = _refusal("The upload expired before it was finished.")
CHECKSUM_MISMATCH = _refusal("Upload-Checksum does not match the body: nothing of it was kept.")
STAGING_UNAVAILABLE = _refusal(
    "The server cannot store uploads at the moment (its staging disk is full, cannot be written, or is not "
    "there: its volume not mounted): nothing was acknowledged that is not stored, and the upload is kept; try "
    "again later from the upload's offset.",
    extra={"Retry-After": _out("Seconds to wait before trying again.", type="integer")})

JOB_FAILURE = {
    "type": "object", "nullable": True, "required": ["code", "message"],
    "description": "Null unless the job's state is `failed`: why it failed (by the type of error, never its text) "
                   "and what can be done.",
    "properties": {
        "code": {"type": "string", "enum": sorted(FAILURE_MESSAGES),
                 "description": "`storage_unavailable` and `database_unavailable`: still failing after the "
                                "retries; nothing is lost and `manage.py ingest --resume` finishes the job. "
                                "`never_started`: the task queue lost the job, even when it was sent again; "
                                "nothing is lost and `manage.py ingest --resume` finishes it. "
                                "`stalled`: the job stopped partway and stopped again each time it was sent "
                                "again; what it stored is kept and `manage.py ingest --resume` finishes it. "
                                "`upload_unreadable`: the staged file could not be read; upload it again. "
                                "`upload_discarded`: the job failed and its staged file was removed since "
                                "(kept `LIGHTBOX_FAILED_UPLOAD_KEEP_DAYS` days after a failure); upload it again. "
                                "`unexpected`: any other error."},
        "message": {"type": "string", "description": "The reason and the next step, in the reader's language."},
    },
}

UPLOAD_STATUS = {
    "type": "object",
    "required": ["id", "state", "offset", "length", "filename", "job"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "state": {"type": "string"}, "offset": {"type": "integer"},
        "length": {"type": "integer", "nullable": True}, "filename": {"type": "string"},
        "job": {"type": "object", "nullable": True, "description": "The ingest of the finished upload: its "
                "state, counts, per-file outcomes (`files`), the studies it made (`studies`) and, when it "
                "failed as a whole, why (`failure`).",
                "properties": {
                    "failure": JOB_FAILURE,
                    "state": {"type": "string", "enum": sorted(JobState.values),
                              "description": "As stored: `queued` and `running` until the job ends."},
                    "outcome": {"type": "string", "enum": sorted([*JobState.values, NOTHING_IMPORTED]),
                                "description": "`state`, except `nothing_imported` for a job that ended "
                                               "with no file in a study (each one skipped, or none)."},
                    "state_label": {"type": "string", "description": "`outcome` in the reader's language."},
                    "report_url": {"type": "string", "description": "The job's report page."}},
                "additionalProperties": True},
    },
}


def _root_path() -> dict:
    discovery = {"Tus-Version": _out("Versions spoken."), "Tus-Extension": _out(f"`{tus.EXTENSIONS}`."),
                 "Tus-Checksum-Algorithm": _out(f"`{','.join(tus.CHECKSUMS)}`."),
                 "Tus-Max-Size": _out("The active organization's limit per upload in bytes (signed in only).",
                                      type="integer")}
    return {
        "options": {
            "operationId": "v1_uploads_options", "tags": TAGS, "security": [_SESSION, {}],
            "summary": "tus discovery",
            "description": "The tus version, extensions, checksum algorithms and, signed in, the size limit.",
            "responses": {"204": {"description": "What the server supports.",
                                  "headers": {**RESUMABLE_OUT, **discovery}}},
        },
        "post": {
            "operationId": "v1_uploads_create", "tags": TAGS, "security": [_SESSION],
            "summary": "Create an upload (tus creation, creation-with-upload)",
            "description": f"A resumable upload (tus {tus.TUS_VERSION}) of one file into the active organization, "
                           "ingested when its last byte arrives; its URL is in `Location`. A body of type "
                           f"`{tus.OCTET}` is its first bytes. Methods: {tus.ROOT_METHODS}; any other is "
                           "answered 405 with `Allow`.",
            "parameters": [TUS_RESUMABLE, CSRF_TOKEN,
                           _header("Upload-Length", "The file's size in bytes (deferred length is not supported).",
                                   required=True, type="integer", minimum=0),
                           METADATA, CHECKSUM],
            "requestBody": {"required": False, "content": _BINARY},
            "responses": {
                "201": {"description": "Created.", "headers": {
                    **RESUMABLE_OUT, "Location": _out("The upload's URL.", type="string", format="uri"),
                    **EXPIRES_OUT, **{k: {**v, "description": "With a body: bytes kept of it."}
                                      for k, v in OFFSET_OUT.items()}}},
                "400": _refusal("Upload-Length missing or not a number, malformed Upload-Metadata, an "
                                "Upload-Checksum with a body that is malformed or of an unknown algorithm (nothing "
                                "is created), or a case this user cannot see."),
                "403": FORBIDDEN,
                "412": PRECONDITION,
                "413": _refusal("Upload-Length is over the organization's limit (`Lightbox-Refusal: too_large`).",
                                extra=_refusal_out(tus.Refusal.TOO_LARGE)),
                "460": CHECKSUM_MISMATCH,
                "503": STAGING_UNAVAILABLE,
            },
        },
    }


def _upload_path() -> dict:
    upload_id = {"in": "path", "name": "upload_id", "required": True, "schema": {"type": "string", "format": "uuid"}}
    common = {"403": SIGNED_OUT, "404": NOT_FOUND}
    operations = {
        "get": {
            "operationId": "v1_uploads_retrieve", "tags": TAGS, "security": [_SESSION],
            "summary": "An upload's status and ingest report (not part of tus)",
            "description": "For staff of the upload's organization (the report names files as they were "
                           f"named). Methods: {tus.UPLOAD_METHODS}; any other is answered 405 with `Allow`.",
            "responses": {"200": {"description": "The upload and, once finished, its ingest.",
                                  "content": {"application/json": {"schema": {
                                      "$ref": "#/components/schemas/UploadStatus"}}}}, **common},
        },
        "head": {
            "operationId": "v1_uploads_offset", "tags": TAGS, "security": [_SESSION],
            "summary": "Where to resume (tus core)", "description": "The uploader's own uploads only.",
            "parameters": [TUS_RESUMABLE],
            "responses": {"200": {"description": "The offset to resume from.", "headers": {
                **RESUMABLE_OUT, **OFFSET_OUT, **EXPIRES_OUT,
                "Upload-Length": _out("The file's size in bytes.", type="integer")}},
                **common, "410": GONE, "412": PRECONDITION, "503": STAGING_UNAVAILABLE},
        },
        "patch": {
            "operationId": "v1_uploads_append", "tags": TAGS, "security": [_SESSION],
            "summary": "Append bytes (tus core, checksum)",
            "description": "The body is appended at Upload-Offset; the last byte queues the ingest. A "
                           "connection dropped mid-body keeps what arrived (without Upload-Checksum).",
            "parameters": [TUS_RESUMABLE, CSRF_TOKEN,
                           _header("Upload-Offset", "Where this body starts: the upload's current offset.",
                                   required=True, type="integer", minimum=0), CHECKSUM],
            "requestBody": {"required": True, "content": _BINARY},
            "responses": {
                "204": {"description": "Appended.", "headers": {**RESUMABLE_OUT, **OFFSET_OUT, **EXPIRES_OUT}},
                "400": _refusal("Upload-Offset missing or not a number, a malformed Upload-Checksum or an unknown "
                                "algorithm, or a body shorter than Content-Length: nothing of it was kept."),
                **common,
                "403": APPEND_FORBIDDEN,
                "409": _refusal("Upload-Offset is not the upload's offset: resume from the one sent.",
                                extra=OFFSET_OUT),
                "410": GONE, "412": PRECONDITION,
                "413": _refusal("More bytes than Upload-Length (`Lightbox-Refusal: over_length`): nothing of "
                                "this body was kept.", extra=_refusal_out(tus.Refusal.OVER_LENGTH)),
                "415": _refusal(f"Content-Type is not `{tus.OCTET}`."),
                "423": _refusal("Another request is writing this upload: try again."),
                "460": CHECKSUM_MISMATCH,
                "503": STAGING_UNAVAILABLE,
            },
        },
        "delete": {
            "operationId": "v1_uploads_terminate", "tags": TAGS, "security": [_SESSION],
            "summary": "Abandon an upload (tus termination)",
            "parameters": [TUS_RESUMABLE, CSRF_TOKEN],
            "responses": {"204": {"description": "Removed.", "headers": RESUMABLE_OUT}, **common,
                          "409": _refusal("Every byte arrived and the ingest has the upload: it can no longer "
                                          "be cancelled."),
                          "410": GONE, "412": PRECONDITION},
        },
        "options": {
            "operationId": "v1_uploads_upload_options", "tags": TAGS, "security": [_SESSION, {}],
            "summary": "tus discovery on an upload (signed in or not; says nothing about the upload)",
            "responses": {"204": {"description": "What the server supports.", "headers": {
                **RESUMABLE_OUT, "Tus-Version": _out("Versions spoken."),
                "Tus-Extension": _out(f"`{tus.EXTENSIONS}`.")}}},
        },
    }
    for op in operations.values():  # drf-spectacular takes each key of a path for a method
        op["parameters"] = [upload_id, *op.get("parameters", [])]
    return operations


def tus_paths() -> tuple[str, str]:
    """The two paths as the schema writes them (``{upload_id}`` for the id)."""
    placeholder = UUID(int=0)
    detail = reverse("imaging:tus_upload", kwargs={"upload_id": placeholder})
    return reverse("imaging:tus_root"), detail.replace(str(placeholder), "{upload_id}")


def schema_tus_paths(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular post-processing hook (after apps.core.api.schema_error_responses, whose JSON
    errors do not apply: tus refusals are plain text)."""
    root, detail = tus_paths()
    result.setdefault("paths", {}).update({root: _root_path(), detail: _upload_path()})
    result.setdefault("components", {}).setdefault("schemas", {})["UploadStatus"] = UPLOAD_STATUS
    return result
