from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.signals import post_migrate


def original_requests_closed_by_migration(sender: AppConfig, *, using: str = DEFAULT_DB_ALIAS,
                                          plan: list | None = None, verbosity: int = 1, **kwargs: Any) -> None:
    """After ``migrate``: record the requests for the original DICOM that migration sharing 0015
    closed and that are not recorded yet (``services.original_requests_closed_by_migration_record``;
    none after the first time). Only once every migration is applied, so that the audit tables
    are as the live models that write them (a ``migrate`` to an earlier target leaves them for
    the next one); not after a ``flush`` (no plan: its tables are empty)."""
    if plan is None or using != DEFAULT_DB_ALIAS:
        return
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[using])
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return
    from apps.sharing.services import original_requests_closed_by_migration_record

    recorded = original_requests_closed_by_migration_record()
    stdout = kwargs.get("stdout")
    if recorded and verbosity >= 1 and stdout is not None:
        stdout.write(f"  Recorded {recorded} request(s) for the original closed by migration sharing 0015 "
                     "in the audit trail")


class SharingConfig(AppConfig):
    name = "apps.sharing"
    label = "sharing"

    def ready(self) -> None:
        post_migrate.connect(original_requests_closed_by_migration, sender=self,
                             dispatch_uid="sharing.original_requests_closed_by_migration")
        from django.contrib.auth.signals import user_logged_in

        from apps.sharing.services import link_session_end_at_sign_in

        # whoever signs in does not inherit the anonymous links opened in the browser before them
        user_logged_in.connect(link_session_end_at_sign_in, dispatch_uid="sharing.link_session_end_at_sign_in")
