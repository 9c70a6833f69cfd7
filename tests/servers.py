"""Start the portal as a real ASGI server (uvicorn) in a subprocess, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    """The process environment without any Lightbox/Django variables, plus ``overrides``."""
    prefixes = ("DJANGO_", "LIGHTBOX_", "DATABASE_URL", "REDIS_URL", "CELERY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(overrides)
    return env


@contextlib.contextmanager
def uvicorn_server(env: dict[str, str], *, timeout: float = 30, log: Path | None = None) -> Iterator[str]:
    """The portal served as ``make serve`` does. With ``log``, its output (access lines
    included, as in production) goes to that file; otherwise warnings only."""
    port = free_port()
    out = log.open("wb") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--no-server-header", "--log-level", "info" if log is not None else "warning"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                output = log.read_bytes() if log is not None else proc.stdout.read()
                raise RuntimeError(f"server exited: {output.decode(errors='replace')}")
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not None:
            out.close()
