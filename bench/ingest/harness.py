"""A self-contained Lightbox instance for end-to-end tests and the ingest benchmark: its own
var/ folder (SQLite database, storage root, staging), an organization, an uploader with a
session cookie, a real HTTP server, tuspy uploads (optionally through a proxy that cuts the
connection), and read-only checks run inside the instance (``manage.py shell``)."""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import sqlite3
import string
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from portal import tmpfs
from tests.servers import ROOT, clean_env, free_port, stop, wait_answering  # noqa: F401 - also used as harness.*

CHUNK = 16 * 1024 * 1024  # as the browser page (static/js/upload.js)

#: SETUP code: ``second_factor_passed(user, session)`` makes ``session`` (a SessionStore not yet
#: created) one in which ``user`` passed the second factor just now, an authenticator and saved
#: recovery codes enrolled. The instances run with the sign-in gate and the step-up on (as every
#: real deployment: LIGHTBOX_MFA_ENFORCED), which ask it for the original DICOM's download
SECOND_FACTOR = r"""
def second_factor_passed(user, session):
    import time
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from apps.accounts.mfa import OTP_VERIFIED_AT
    device = (TOTPDevice.objects.filter(user=user, confirmed=True).first()
              or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True))
    if not StaticDevice.objects.filter(user=user, confirmed=True).exists():
        StaticDevice.objects.create(user=user, name="recovery", confirmed=True)
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[OTP_VERIFIED_AT] = time.time()
"""

SETUP = SECOND_FACTOR + r"""
import json
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from apps.accounts.models import User
from apps.organizations.models import Membership, Organization
org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench Hospital"})
if hasattr(org, "mfa_required_roles"):
    org.mfa_required_roles = []
org.upload_max_bytes = 50 * 1024**3
org.save()
user = User.objects.filter(email="uploader@bench.example").first()
if user is None:
    user = User.objects.create_user(email="uploader@bench.example", password=None)
Membership.objects.get_or_create(user=user, organization=org, defaults={"role": "radiologist"})
s = SessionStore()
s[SESSION_KEY] = str(user.pk)
s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
s[HASH_SESSION_KEY] = user.get_session_auth_hash()
second_factor_passed(user, s)
s.create()
print("SETUP" + json.dumps({"session": s.session_key}))
"""


@dataclass
class Instance:
    var_dir: Path
    env: dict[str, str]
    session: str
    csrf: str

    @property
    def storage_root(self) -> Path:
        return self.var_dir / "storage"

    @property
    def upload_dir(self) -> Path:
        return self.var_dir / "uploads"

    def headers(self) -> dict[str, str]:
        cookie_name = self.env.get("DJANGO_SESSION_COOKIE_NAME", "lightbox_session")
        return {"Cookie": f"{cookie_name}={self.session}; csrftoken={self.csrf}", "X-CSRFToken": self.csrf}

    def manage(self, *args: str, input: str | None = None, timeout: float = 600) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, input=input,
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def shell_json(self, code: str, marker: str = "RESULT") -> dict:
        out = self.manage("shell", "-c", code)
        line = next(line for line in out.splitlines() if line.startswith(marker))
        return json.loads(line[len(marker):])


def prepare(var_dir: Path, *, fast_db: bool = False, **env_overrides: str) -> Instance:
    """Migrate a fresh instance in ``var_dir`` and sign in an uploader (a session in the database).

    ``fast_db`` keeps the SQLite database in /dev/shm (memory): tests then pay no fsync per
    commit (this machine's disk takes ~30 ms each). Storage and staging stay in ``var_dir``."""
    var_dir = Path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    db_path = None
    if fast_db and "DATABASE_URL" not in env_overrides and Path(tmpfs.SHM).is_dir():
        db_dir = Path(tmpfs.private_memory_folder("lightbox-db-"))  # memory, not disk; removed at exit
        db_path = db_dir / "lightbox.sqlite3"
        env_overrides["DATABASE_URL"] = f"sqlite:///{db_path}"
    # renditions (previews, lossless copies) are another stage with their own benchmark: off here
    settings_env = {"LIGHTBOX_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "portal.settings.local",
                    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "LIGHTBOX_RENDITIONS_AFTER_INGEST": "false"}
    env = clean_env(**{**settings_env, **env_overrides})
    inst = Instance(var_dir=var_dir, env=env, session="", csrf="")
    if db_path is None:
        inst.manage("migrate", "--noinput")
    else:
        _migrated_sqlite(inst, db_path)
    inst.session = inst.shell_json(SETUP, marker="SETUP")["session"]
    alphabet = string.ascii_letters + string.digits
    inst.csrf = "".join(secrets.choice(alphabet) for _ in range(32))
    return inst


#: per process: a migrated SQLite database (in memory) for each state of the migrations
_MIGRATED: dict[str, Path] = {}


def _migrations_key() -> str:
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("apps/*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _migrated_sqlite(inst: Instance, db_path: Path) -> None:
    """Migrate the instance's new SQLite database at ``db_path``: the first time in this process
    by ``manage.py migrate`` (15 s on this machine), then by copying that result (SQLite's backup
    API), as long as no migration file changed. The tests that start a server on a fresh instance
    paid the 15 s each."""
    key = _migrations_key()
    template = _MIGRATED.get(key)
    if template is None or not template.exists():
        inst.manage("migrate", "--noinput")
        template = Path(tmpfs.private_memory_folder("lightbox-db-migrated-")) / "migrated.sqlite3"
        _sqlite_copy(db_path, template)
        _MIGRATED[key] = template
    else:
        _sqlite_copy(template, db_path)


def _sqlite_copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def start_worker(inst: Instance) -> subprocess.Popen:
    """A Celery worker for the instance (one pool process; its broker is the instance's
    REDIS_URL)."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-c", "1", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=inst.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def redis_db(url: str, db: int) -> str:
    """``url`` with another database number (tests that flush their broker use their own)."""
    base, _, last = url.rstrip("/").rpartition("/")
    return f"{base}/{db}" if last.isdigit() else f"{url.rstrip('/')}/{db}"


class CuttingProxy:
    """A loopback TCP proxy that drops every connection, once, after ``cut_after`` bytes from
    the client: a connection that dies half way through an upload."""

    def __init__(self, target_port: int, cut_after: int | None):
        self.target_port = target_port
        self.cut_after = cut_after
        self.forwarded = 0
        self.cut = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            ended: list[bool] = []
            threading.Thread(target=self._pipe, args=(client, upstream, True, ended), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False, ended), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool, ended: list[bool]) -> None:
        try:
            while data := src.recv(65536):
                if upstream and not self.cut.is_set() and self.cut_after is not None:
                    with self._lock:
                        self.forwarded += len(data)
                        if self.forwarded >= self.cut_after:
                            self.cut.set()
                            self._drop_all()
                            return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # shut both down (the other direction's recv returns), and let the pair's last thread
            # close them: a socket closed under the other thread's recv frees its descriptor, which
            # the next accepted connection takes, and that recv then reads the next client's request
            # (under load the client saw "Remote end closed connection without response")
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                ended.append(True)
                last = len(ended) == 2
            if last:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

    def _drop_all(self) -> None:
        for s in self._conns:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            except OSError:
                pass
        self._conns = []

    def close(self) -> None:
        self.sock.close()
        with self._lock:
            self._drop_all()


def make_uploader(base: str, inst: Instance, path: Path, *, url: str | None = None,
                  metadata: dict | None = None, chunk_size: int = CHUNK):
    """A tuspy uploader (sha1 checksum on every PATCH) for ``path``; resumes when given ``url``."""
    from tusclient import client as tus_client

    tc = tus_client.TusClient(f"{base}/api/v1/uploads/", headers=inst.headers())
    return tc.uploader(str(path), url=url, chunk_size=chunk_size, retries=0, upload_checksum=True,
                       metadata=metadata or {"filename": Path(path).name})


def tus_upload(base: str, inst: Instance, path: Path, *, rate: float | None = None, **kwargs) -> str:
    """Upload (or resume, given ``url``) one file with tuspy; returns the upload URL. ``rate``
    (MB/s) paces the chunks as a slower link would (a chunk is sent once the average allows)."""
    uploader = make_uploader(base, inst, path, **kwargs)
    if rate is None:
        uploader.upload()
        return uploader.url
    start = time.monotonic()
    while uploader.offset < uploader.get_file_size():
        uploader.upload_chunk()
        ahead = uploader.offset / (rate * 1e6) - (time.monotonic() - start)
        if ahead > 0 and uploader.offset < uploader.get_file_size():
            time.sleep(ahead)
    return uploader.url


def tus_offset(url: str, inst: Instance) -> int:
    import requests

    r = requests.head(url, headers={**inst.headers(), "Tus-Resumable": "1.0.0"}, timeout=30)
    r.raise_for_status()
    return int(r.headers["Upload-Offset"])


def wait_for_ingest(url: str, inst: Instance, timeout: float = 600) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        status = upload_status(url, inst)
        job = status.get("job")
        if job and job["state"] not in ("queued", "running"):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"ingest not finished: {status}")
        time.sleep(0.1)  # the bench times the end by this: a coarse poll would add up to its interval


VERIFY = r"""
import hashlib, json
from apps.imaging.blobs import open_blob
from apps.imaging.models import Blob, Instance, Study
out = {"studies": [], "instances": {}, "blobs": Blob.objects.count()}
for s in Study.objects.all():
    out["studies"].append({"uid": s.study_instance_uid, "version": s.version, "state": s.state,
                           "instances": s.num_instances})
for i in Instance.objects.select_related("blob"):
    digest = hashlib.sha256()
    with open_blob(i.blob) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    out["instances"][i.sop_instance_uid] = [i.sha256, digest.hexdigest(), i.study.version]
print("RESULT" + json.dumps(out))
"""


def verify(inst: Instance) -> dict:
    """Every stored instance, its recorded sha256 and the sha256 of its decrypted blob."""
    return inst.shell_json(VERIFY)


def upload_status(url: str, inst: Instance) -> dict:
    import requests

    r = requests.get(url, headers=inst.headers(), timeout=30)
    r.raise_for_status()
    return r.json()
