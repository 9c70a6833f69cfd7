"""Re-wrap every blob's and staged upload's data key with the current master key.

Data is not re-encrypted: only the small wrapped keys change. Put the new key first in
LIGHTBOX_MASTER_KEYS (keeping the old ones) in every web and worker process, restart them, run
this, then remove the old keys. Staged uploads are all those whose staging file may still be
there (``uploads.uploads_staged``): still arriving, and finished ones whose ingest job is queued,
running or failed with its file kept for ``manage.py ingest --resume``. What ended uploads left in
the staging folder (a job done whose staged file could not be deleted, say) is deleted first
(``uploads.staging_leftovers_delete``): its key is not re-wrapped, and nothing would read it. A
staging folder that cannot be read (the command run as a user the 0700 folder is not open to) is
reported on stderr and the rotation goes on: the rows say which uploads are staged.

Each row is re-wrapped by its own conditional UPDATE, committed at once: a run stopped half way
leaves every row readable while both keys are configured, and running it again goes on. At the
end the rows still on another master key are counted (a data key that could not be unwrapped, a
row written meanwhile by a process still on the old configuration): if any remain the command
fails, naming their key ids, and the old keys must stay. Each run is recorded in the audit trail
(keys.rotated)."""

from __future__ import annotations

import logging

from cryptography.exceptions import InvalidTag
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from apps.audit import actions
from apps.audit.services import record
from apps.imaging import keys
from apps.imaging.blobs import blob_rewrap
from apps.imaging.models import Blob
from apps.imaging.uploads import staging_leftovers_delete, upload_rewrap, uploads_staged

logger = logging.getLogger(__name__)

#: a data key that does not open: its master key id is not configured, or the key under that id
#: is not the one that wrapped it
UNWRAP_ERRORS = (ImproperlyConfigured, InvalidTag)


class Command(BaseCommand):
    help = ("Re-wrap the data keys of every blob and staged upload with the current master key (no data is "
            "re-encrypted); fails if any is left on another key.")

    def handle(self, *args, **options):
        current = keys.current_key_id()
        try:
            if left := staging_leftovers_delete():
                self.stdout.write(f"deleted the staging files that {left} ended upload(s) had left")
        except OSError as exc:  # the staging folder unreadable (run as another user): keys first
            message = (f"the staging folder's leftovers were not swept ({type(exc).__name__}); the keys are "
                       "re-wrapped all the same")
            logger.warning("rotate_keys: %s", message)
            self.stderr.write(message)
        done = self._rewrap(Blob.objects.exclude(key_id=current).order_by("pk"), blob_rewrap, current, "blob")
        uploads = self._rewrap(uploads_staged().exclude(key_id=current).order_by("pk"), upload_rewrap, current,
                               "upload")
        # key management is a security configuration change: recorded in the global chain (blobs
        # are shared between organizations), figures only
        record(action=actions.KEYS_ROTATED, actor_label="system",
               details={"key_id": current, "blobs": done, "uploads": uploads})
        self.stdout.write(f"re-wrapped {done} blob key(s) and {uploads} upload key(s) with {current}")
        left_blobs = _by_key_id(Blob.objects.exclude(key_id=current))
        left_uploads = _by_key_id(uploads_staged().exclude(key_id=current))
        if left_blobs or left_uploads:
            ids = ", ".join(sorted(set(left_blobs) | set(left_uploads)))
            raise CommandError(
                f"{sum(left_blobs.values())} blob key(s) and {sum(left_uploads.values())} upload key(s) are still "
                f"wrapped with another master key than {current} ({ids}): keep those keys in LIGHTBOX_MASTER_KEYS. "
                f"If every process already uses {current} first, run rotate_keys again; a key that could not be "
                "unwrapped is named above.")
        self.stdout.write(f"every blob and staged upload is on {current}: the other master keys can be removed")

    def _rewrap(self, rows, rewrap, current: str, kind: str) -> int:
        """Each row on its own (``rewrap`` commits it); one whose key does not open is named,
        left as it is, and counted with those left at the end."""
        n = 0
        for row in rows.iterator(chunk_size=500):
            try:
                n += rewrap(row, key_id=current)
            except UNWRAP_ERRORS as exc:
                name = getattr(row, "public_id", row.pk)
                reason = ("is not in LIGHTBOX_MASTER_KEYS" if isinstance(exc, ImproperlyConfigured)
                          else "does not unwrap it")
                message = f"{kind} {name}: its data key was not re-wrapped: master key {row.key_id!r} {reason}"
                logger.warning("rotate_keys: %s", message)
                self.stderr.write(message)
        return n


def _by_key_id(rows) -> dict[str, int]:
    return dict(rows.order_by().values_list("key_id").annotate(n=Count("pk")))
