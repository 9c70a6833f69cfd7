"""The audit trail: append-only, hash-chained per organization.

Every event carries ``seq`` (its place in its chain), ``prev_hash`` (the hash of the event before
it in the same chain) and ``hash`` (SHA-256 over a canonical serialization of every field,
``apps.audit.chain.canonical``). Each organization has its own chain; events without an
organization form the "global" chain. ``AuditChain`` holds the head of each chain (last seq and
hash) and is the row writers lock, so two writers in one organization never fork the chain.

Rows are never changed: ``save()`` of an existing row, ``delete()`` and queryset ``update()`` /
``delete()`` raise here, and on PostgreSQL a trigger refuses UPDATE and DELETE on the table
(migration 0004). ``manage.py verify_audit`` recomputes every chain.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import signals, sql
from django.utils import timezone

from apps.organizations.scoping import OrgScopedQuerySet


class Outcome(models.TextChoices):
    ALLOWED = "allowed", "allowed"
    DENIED = "denied", "denied"
    FAILED = "failed", "failed"   # the action was allowed but did not succeed (e.g. an ingest)


class ActorType(models.TextChoices):
    USER = "user", "user"
    LINK = "link", "link"          # someone holding a share link (anonymous or not signed in)
    ANONYMOUS = "anonymous", "anonymous"  # a visitor not signed in (e.g. a failed sign-in)
    SYSTEM = "system", "system"    # tasks, commands, expiry


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event."""


class AuditEventQuerySet(OrgScopedQuerySet["AuditEvent"]):
    visible_action = "view_audit"

    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events are append-only: update() refused")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events are append-only: delete() refused")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AppendOnlyError("audit events are append-only: bulk_update() refused")

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[AuditEvent]:
        raise AppendOnlyError("audit events are chained one by one: use apps.audit.services.record()")


class AuditEvent(models.Model):
    """One thing that happened. Details hold ids and figures, never patient names.

    Every feature writes through ``apps.audit.services.record``; a direct ``create()`` is chained
    as well (``save`` appends to the chain), so there is no unchained path."""

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    organization = models.ForeignKey("organizations.Organization", null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="audit_events")
    # No database constraint and no cascade: the trail outlives the users it speaks of, and a
    # user's deletion must not try to rewrite their events (the trigger would refuse it).
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, db_constraint=False,
                              on_delete=models.DO_NOTHING, related_name="+")
    actor_type = models.CharField(max_length=10, choices=ActorType.choices, default=ActorType.SYSTEM)
    actor_label = models.CharField(max_length=200, blank=True)  # "system", "link:<id>", the e-mail
    link_ref = models.UUIDField(null=True, blank=True)  # the share link used, if any
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    # public ids, not foreign keys: the trail outlives the rows it speaks of
    case_ref = models.UUIDField(null=True, blank=True)
    study_ref = models.UUIDField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.ALLOWED)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)
    # the chain
    seq = models.BigIntegerField(editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            # a fork (two events with one place in one chain) is impossible, not just unlikely
            models.UniqueConstraint(fields=["organization", "seq"], condition=models.Q(organization__isnull=False),
                                    name="audit_one_seq_per_org_chain"),
            models.UniqueConstraint(fields=["seq"], condition=models.Q(organization__isnull=True),
                                    name="audit_one_seq_in_global_chain"),
        ]
        # Search (apps.audit.selectors.event_search) filters one organization plus one criterion
        # and pages newest first: each index answers "org + criterion ORDER BY seq DESC LIMIT n".
        indexes = [
            models.Index(fields=["organization", "actor", "seq"], name="audit_org_actor_seq"),
            models.Index(fields=["organization", "action", "seq"], name="audit_org_action_seq"),
            models.Index(fields=["organization", "outcome", "seq"], name="audit_org_outcome_seq"),
            models.Index(fields=["organization", "created_at"], name="audit_org_created"),
            models.Index(fields=["case_ref", "seq"], name="audit_case_seq"),
            models.Index(fields=["study_ref", "seq"], name="audit_study_seq"),
            models.Index(fields=["actor", "seq"], name="audit_actor_seq"),
            # "everything about this object" (a patient's own events carry no case ref)
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only: save() of an existing event refused")
        from apps.audit.chain import append

        append(self, using=kwargs.get("using"))

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events are append-only: delete() refused")

    def _insert(self, using: str | None = None) -> None:
        """The INSERT, called by the chain with the head locked (on PostgreSQL ``_insert_sql``
        instead, sent with the head's update)."""
        super().save(using=using, force_insert=True)

    def _insert_sql(self, *, using: str, returning: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
        """The INSERT ``_insert`` runs (the same columns and values: each field's ``pre_save`` and
        database conversion, the ``pre_save`` signal), as SQL returning the columns ``returning``,
        for the chain to run it in one statement with the head's update (PostgreSQL).
        ``_inserted`` completes it."""
        meta = self._meta
        self._prepare_related_fields_for_save(operation_name="save")
        signals.pre_save.send(sender=type(self), instance=self, raw=False, using=using, update_fields=None)
        fields = [f for f in meta.local_concrete_fields
                  if not f.generated and not (f is meta.auto_field and self.pk is None)]
        query = sql.InsertQuery(type(self))
        query.insert_values(fields, [self])
        compiler = query.get_compiler(using=using)
        compiler.returning_fields = [meta.get_field(name) for name in returning]
        [(text, params)] = compiler.as_sql()
        return text, tuple(params)

    def _inserted(self, *, pk: int, using: str) -> None:
        """After ``_insert_sql``'s statement: the row is saved, as ``save`` leaves it (and says so:
        the ``post_save`` signal)."""
        self.pk = pk
        self._state.adding = False
        self._state.db = using
        signals.post_save.send(sender=type(self), instance=self, created=True, update_fields=None, raw=False,
                               using=using)

    @property
    def chain_label(self) -> str:
        return str(self.organization_id) if self.organization_id else "global"


class AuditChain(models.Model):
    """The head of one chain: the row writers lock (SELECT ... FOR UPDATE) before appending.

    ``key`` is the organization id, or 0 for the global chain (events without organization)."""

    key = models.BigIntegerField(primary_key=True)
    seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"chain {self.key or 'global'} at {self.seq}"
