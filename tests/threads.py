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
