"""Start the portal as a real ASGI server (uvicorn) in a subprocess, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
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


def wait_answering(proc: subprocess.Popen, url: str, *, timeout: float,
                   output: Callable[[], bytes] | None = None) -> None:
    """Wait until the server ``proc`` answers ``url``. RuntimeError if it exits first (with its
    ``output``, when given) or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            said = output().decode(errors="replace") if output is not None else ""
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}: {said}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.args[:3]} did not answer {url} within {timeout:g} s") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def uvicorn_server(env: dict[str, str], *, timeout: float = 30, log: Path | None = None,
                   app: str = "portal.asgi:application") -> Iterator[str]:
    """The portal served as ``make serve`` does. With ``log``, its output (access lines
    included, as in production) goes to that file; otherwise warnings only, to a temporary file
    (a pipe nobody reads would stop the server once it filled). ``app``: the ASGI application
    (a test's wrapper of the portal's)."""
    port = free_port()
    out = log.open("wb") if log is not None else tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
         "--port", str(port), "--no-server-header", "--log-level", "info" if log is not None else "warning"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def output() -> bytes:
        out.flush()
        with open(out.fileno(), "rb", closefd=False) as again:
            again.seek(0)
            return again.read()

    try:
        wait_answering(proc, f"{base}/healthz", timeout=timeout, output=output)
        yield base
    finally:
        stop(proc)
        out.close()


@contextlib.contextmanager
def server_log_on_failure(log: Path, tail: int = 20_000) -> Iterator[None]:
    """Print the end of the server's ``log`` if the block fails (pytest shows it with the
    failure): a 500 seen by a client is explained by the server's traceback."""
    try:
        yield
    except BaseException:
        if log.exists():
            print(f"--- the server's log ({log}), its last {tail} characters ---")
            print(log.read_text(errors="replace")[-tail:])
        raise
