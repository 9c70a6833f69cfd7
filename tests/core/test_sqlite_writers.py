"""The embedded default's SQLite database is written by several threads of one server (uvicorn
runs each request in its own thread) and by a Celery worker beside it. A transaction that reads,
then writes, while another writer holds the database must wait for it, not fail with "database
is locked" (a 500 to the client, or, for a session being saved, "the session was deleted").

Run in a subprocess on a SQLite file with the embedded default's settings: the suite itself may
run on PostgreSQL, or on an in-memory SQLite database whose one connection the threads share."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.servers import ROOT, clean_env

SCRIPT = r"""
import json, threading, time
import django
django.setup()
from django.db import OperationalError, connection, transaction

with connection.cursor() as cur:
    cur.execute("CREATE TABLE counter (id integer primary key, n integer)")
    cur.execute("INSERT INTO counter VALUES (1, 0)")
connection.close()

errors, THREADS, ROUNDS = [], 4, 25

def writer():
    try:
        for _ in range(ROUNDS):
            try:
                with transaction.atomic(), connection.cursor() as cur:
                    cur.execute("SELECT n FROM counter WHERE id = 1")   # read ...
                    n = cur.fetchone()[0]
                    time.sleep(0.002)                                   # ... while others write ...
                    cur.execute("UPDATE counter SET n = %s WHERE id = 1", [n + 1])  # ... then write
            except OperationalError as exc:
                errors.append(str(exc))
    finally:
        connection.close()

threads = [threading.Thread(target=writer) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with connection.cursor() as cur:
    cur.execute("SELECT n FROM counter WHERE id = 1")
    n = cur.fetchone()[0]
print("RESULT" + json.dumps({"errors": errors[:3], "failed": len(errors), "n": n, "expected": THREADS * ROUNDS}))
"""


def test_concurrent_read_then_write_transactions_wait_for_each_other_on_sqlite(tmp_path):
    env = clean_env(DJANGO_SETTINGS_MODULE="portal.settings.local", LIGHTBOX_VAR_DIR=str(tmp_path),
                    DATABASE_URL=f"sqlite:///{tmp_path / 'lightbox.sqlite3'}")
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[6:])
    assert result["failed"] == 0, result["errors"]
    # and no update was lost: each transaction saw the one before it
    assert result["n"] == result["expected"]


def test_the_live_servers_threads_do_not_share_one_sqlite_connection(db):
    """On SQLite the suite's database is a file (portal.settings.test): Django's in-memory test
    database is one connection that the live server's request threads would share, so that two
    requests at once interleaved their transactions on it."""
    from django.db import connection
    from django.test.testcases import LiveServerTestCase

    if connection.vendor != "sqlite":
        return  # PostgreSQL: every thread has its own connection anyway
    assert not connection.is_in_memory_db()
    assert LiveServerTestCase._make_connections_override() == {}
