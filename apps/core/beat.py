"""The beat schedule on the embedded default.

In production `celery -A portal beat` sends each entry of ``CELERY_BEAT_SCHEDULE`` to the broker
for the workers. The embedded default (`make run`) has no broker: tasks run in-process (Celery
eager), and nothing would ever run the schedule, so on a demo left running uploads would never
expire, idle viewer sessions never close and expired shares never reach the audit trail or the
metrics. There, ``start()`` runs the same schedule on a daemon thread of the server process: each
entry's task, in-process, when Celery's own schedule object says it is due (the first run one
interval after start, as beat does). ``LIGHTBOX_IN_PROCESS_BEAT`` (on where tasks run eagerly).
"""

from __future__ import annotations

import logging
import threading

from celery.schedules import maybe_schedule
from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

LONGEST_SLEEP = 60.0  # seconds between looks at the schedule, at most


class InProcessBeat:
    def __init__(self, schedule: dict[str, dict], *, celery_app=None):
        from portal.celery import app

        self.app = celery_app or app
        self.app.loader.import_default_modules()  # every app's tasks module: the tasks are registered
        started = self.app.now()
        self.entries = {name: {"task": entry["task"], "args": tuple(entry.get("args", ())),
                               "kwargs": dict(entry.get("kwargs", {})),
                               "schedule": maybe_schedule(entry["schedule"], app=self.app), "last": started}
                        for name, entry in schedule.items()}
        self.runs: dict[str, int] = dict.fromkeys(self.entries, 0)
        self.failures: dict[str, int] = dict.fromkeys(self.entries, 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> float:
        """Run every entry that is due; returns the seconds until the next one may be."""
        wait = LONGEST_SLEEP
        for name, entry in self.entries.items():
            due, next_check = entry["schedule"].is_due(entry["last"])
            if due:
                entry["last"] = self.app.now()
                self._run(name, entry)
            wait = min(wait, next_check)
        return max(wait, 0.05)

    def _run(self, name: str, entry: dict) -> None:
        close_old_connections()
        try:
            task = self.app.tasks[entry["task"]]
            task.apply(args=entry["args"], kwargs=entry["kwargs"], throw=True)
            self.runs[name] += 1
        except Exception as exc:  # noqa: BLE001 - one entry failing stops neither the others nor its next run
            self.failures[name] += 1
            log.error("scheduled task %s failed (%s)", name, type(exc).__name__)
        finally:
            close_old_connections()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.tick())

    def start(self) -> InProcessBeat:
        self._thread = threading.Thread(target=self._loop, name="lightbox-beat", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


_started: InProcessBeat | None = None


def start() -> InProcessBeat | None:
    """Start the schedule in this process, once, where ``LIGHTBOX_IN_PROCESS_BEAT`` is on."""
    global _started
    if _started is None and getattr(settings, "LIGHTBOX_IN_PROCESS_BEAT", False):
        _started = InProcessBeat(settings.CELERY_BEAT_SCHEDULE).start()
        log.info("running the beat schedule in-process (%d entries)", len(_started.entries))
    return _started


