"""Concurrency tests: work run on a thread of its own, with its own database connection."""

from __future__ import annotations

import threading

from django.db import connections


def in_thread(failures: list[BaseException], fn, *args, **kwargs) -> threading.Thread:
    """Start ``fn`` on a thread with its own database connection; what it raises goes to ``failures``."""
    def run():
        try:
            fn(*args, **kwargs)
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def waiting_on_a_lock() -> list[str]:
    """The statements of the other connections to this database that wait for a lock (PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction the view is read once
        cursor.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return [row[0] for row in cursor.fetchall()]


def in_thread_until_blocked(failures: list[BaseException], fn, *args, timeout: float = 5,
                            **kwargs) -> threading.Thread:
    """``in_thread``, then wait until ``fn`` has finished or waits for a lock (at most ``timeout``
    seconds): called inside a transaction under test, the competing work has then gone as far as
    it can before that transaction commits."""
    import time

    thread = in_thread(failures, fn, *args, **kwargs)
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline and not waiting_on_a_lock():
        time.sleep(0.05)
    return thread
