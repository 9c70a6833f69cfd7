"""Moving the test database through its migrations, for the tests of data migrations
(tests/cases/test_mrn_migration.py, tests/sharing/test_data_migrations.py).

A test module takes one ``Migrator`` back to the states it makes its rows in and forward through
the migrations it checks, with Django's own ``MigrationExecutor``: the migrations' real operations
run on the real tables. Two costs of a naive ``MigrationExecutor(connection).migrate(targets)``
are left out, neither changing which operations run nor the state they run with:

- A step back is taken one app at a time, the dependents first (the order of Django's plan, cut
  where the app changes). To unapply a migration Django renders every app's models for the state
  before it, and then changes those rendered models for each migration applied after it in the
  full plan up to the last one it unapplies (each change re-renders the models related to the
  model changed): from the latest state to cases 0004 in one call that crossed every app between
  cases 0005 and sharing 0013 (3.4 s); app by app, sharing's then cases', 1.2 s.
- A step forward starts from the state the step before ended with (Django's ``migrate(...,
  state=...)``), already rendered, as long as the database's applied migrations are still those
  it was computed for (else, e.g. after ``manage.py migrate``, Django computes it again).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import StateApps

T = TypeVar("T")


class Migrator:
    """One database's migrations moved by one executor (its loader re-read at each step)."""

    def __init__(self) -> None:
        self.executor = MigrationExecutor(connection)
        self._state = None  # the project state after this migrator's last step
        self._applied: set[tuple[str, str]] | None = None  # the migrations applied then

    def migrate(self, targets: list[tuple[str, str]]) -> StateApps:
        """The database at ``targets`` (as ``manage.py migrate <app> <name>``); the models as it has
        them, until the next step (which changes them)."""
        executor = self.executor
        executor.loader.build_graph()  # what is applied now
        state = self._state if set(executor.loader.applied_migrations) == self._applied else None
        self._state = self._applied = None  # a step that fails leaves its state changed halfway
        plan = executor.migration_plan(targets)
        if plan and plan[0][1]:  # backwards
            for _app, steps in itertools.groupby(plan, key=lambda step: step[0].app_label):
                state = executor.migrate(targets, plan=list(steps))
                executor.loader.build_graph()
        else:
            state = executor.migrate(targets, plan=plan, state=state)
            executor.loader.build_graph()
        self._state, self._applied = state, set(executor.loader.applied_migrations)
        return state.apps

    def latest(self) -> None:
        """Every migration applied, as the tests after a migration test expect the tables."""
        executor = self.executor
        executor.loader.build_graph()
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.migrate(executor.loader.graph.leaf_nodes())


def module_trip(django_db_blocker, trip: Callable[[Migrator], T]) -> Iterator[T]:
    """For a module-scoped fixture (``yield from``): ``trip(migrator)`` run, from the latest state,
    outside any test's transaction, and what it returns given to the module's tests. Then, also
    when a step failed, the tables emptied as pytest-django empties them after a
    ``transaction=True`` test (first: rows a failed step left would fail it again) and every
    migration applied, as the later tests expect them."""
    with django_db_blocker.unblock():
        migrator = Migrator()
    try:
        with django_db_blocker.unblock():
            seen = trip(migrator)
        yield seen
    finally:
        with django_db_blocker.unblock():
            call_command("flush", verbosity=0, interactive=False, reset_sequences=False)
            migrator.latest()
