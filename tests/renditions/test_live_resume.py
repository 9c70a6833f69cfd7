"""Over a real ASGI server (uvicorn): HEAD answers like GET with no body and counts nothing; a
download begun under a live grant resumes with Range after the grant expired (the joined bytes
have the full package's sha256); after a revocation the same request is refused and recorded."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

import pytest

from bench.ingest import harness
from bench.ingest.synthetic import write_ct_series
from tests.servers import uvicorn_server

pytestmark = [pytest.mark.slow]

SETUP = harness.SECOND_FACTOR + r"""
import json
from datetime import timedelta
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from apps.accounts.models import User
from apps.organizations.models import Organization
from apps.sharing import services
from tests.factories import CaseFactory, member
org = Organization.objects.get(slug="bench")
owner = User.objects.get(email="uploader@bench.example")
case = CaseFactory(organization=org, created_by=owner, responsible_clinician=owner)
consultant = member(org, "external_consultant", email="consultant@bench.example")
grant = services.grant_create(case=case, grantee=consultant, by=owner, permissions=["view", "download_original"],
                              renditions=["original"], download_limit=2,
                              expires_at=timezone.now() + timedelta(hours=2))
s = SessionStore()
s[SESSION_KEY] = str(consultant.pk)
s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
s[HASH_SESSION_KEY] = consultant.get_session_auth_hash()
second_factor_passed(consultant, s)  # the original asks for it
s.create()
print("RESULT" + json.dumps({"case": str(case.public_id), "grant": grant.pk, "session": s.session_key}))
"""


def _get(url: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers, method=method), timeout=60) as r:
            return r.status, {k.title(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as error:
        return error.code, {}, b""


def test_head_and_resume_after_expiry_over_uvicorn(tmp_path):
    inst = harness.prepare(tmp_path / "var", fast_db=True)
    made = inst.shell_json(SETUP)
    write_ct_series(tmp_path / "CT", slices=6, rows=64, columns=64)
    inst.manage("ingest", str(tmp_path / "CT"), "--org", "bench", "--case", made["case"], "--no-progress")
    study = inst.shell_json("import json; from apps.imaging.models import Study; "
                            "print('RESULT' + json.dumps(str(Study.objects.get().public_id)))")
    cookie = inst.env.get("DJANGO_SESSION_COOKIE_NAME", "lightbox_session")
    consultant = {"Cookie": f"{cookie}={made['session']}"}

    def grant(code: str):
        return inst.shell_json("import json; from django.utils import timezone; "
                               "from apps.sharing.models import Grant; from apps.audit.models import AuditEvent; "
                               f"g = Grant.objects.get(pk={made['grant']}); {code}; "
                               "print('RESULT' + json.dumps([g.download_count, g.downloads.count(), "
                               "AuditEvent.objects.filter(action__startswith='download.').count(), "
                               "AuditEvent.objects.filter(action='access.denied').count()]))")

    with uvicorn_server(inst.env, timeout=60) as base:
        url = f"{base}/studies/{study}/download/?rendition=original"
        status, full_headers, full = _get(url, inst.headers())          # staff: the reference bytes
        assert status == 200 and len(full) == int(full_headers["Content-Length"])
        # HEAD: the same headers as GET, no body, nothing counted or recorded as a transfer
        status, head, body = _get(url, consultant, method="HEAD")
        assert status == 200 and body == b""
        for name in ("Content-Length", "Accept-Ranges", "Etag", "Content-Disposition"):
            assert head[name] == full_headers[name], name
        assert grant("pass") == [0, 0, 2, 0]  # the staff GET's download.started and download.completed
        # half, while the grant is live: counted once
        half = len(full) // 2
        status, _, first = _get(url, {**consultant, "Range": f"bytes=0-{half - 1}"})
        assert status == 206 and len(first) == half
        # the grant expires; the transfer resumes within the hour
        grant("Grant.objects.filter(pk=g.pk).update(expires_at=timezone.now())")
        resume = {**consultant, "Range": f"bytes={half}-", "If-Range": head["Etag"]}
        status, headers, rest = _get(url, resume)
        assert status == 206 and headers["Content-Range"] == f"bytes {half}-{len(full) - 1}/{len(full)}"
        assert hashlib.sha256(first + rest).hexdigest() == hashlib.sha256(full).hexdigest()
        # a fresh download after expiry is refused
        assert _get(url, consultant)[0] == 404
        # revoked: the resume is refused too, and the denial recorded
        count, downloads, transfers, denials = grant(
            "from apps.sharing import services; services.grants_revoke(grants=[g], by=None, reason='test')")
        # staff GET, the half, the resumed rest: each recorded when it began and when it ended
        assert (count, downloads, transfers) == (1, 1, 6)
        assert _get(url, resume)[0] == 404
        assert grant("pass")[3] == denials + 1
