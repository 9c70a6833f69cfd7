from __future__ import annotations

from typing import Any

from django.apps import AppConfig

_kept: dict[str, Any] = {}


def _task_started(task_id: str | None = None, **kwargs: Any) -> None:
    from apps.audit.services import denials_kept

    if task_id is not None:
        context = denials_kept()
        context.__enter__()
        _kept[task_id] = context


def _task_ended(task_id: str | None = None, **kwargs: Any) -> None:
    context = _kept.pop(task_id, None) if task_id is not None else None
    if context is not None:
        context.__exit__(None, None, None)


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self) -> None:
        # a task refused by the policy inside its own atomic block keeps its denial, as a request
        # does (apps.audit.middleware): task_postrun runs after the task body, success or failure
        from celery.signals import task_postrun, task_prerun

        task_prerun.connect(_task_started, weak=False, dispatch_uid="audit-denials-kept-start")
        task_postrun.connect(_task_ended, weak=False, dispatch_uid="audit-denials-kept-end")
