"""Every periodic task in the beat schedule names a task that exists (a typo would never run)."""

from django.conf import settings


def test_every_beat_entry_names_a_registered_task():
    from portal.celery import app

    app.loader.import_default_modules()
    assert settings.CELERY_BEAT_SCHEDULE, "the schedule is empty"
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, f"{name}: no task named {entry['task']}"
        assert entry["schedule"] > 0
