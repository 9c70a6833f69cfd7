"""Re-wrap every blob's and staging upload's data key with the current master key.

Data is not re-encrypted: only the small wrapped keys change. Add the new key first in
LIGHTBOX_MASTER_KEYS (keeping the old ones), run this, then remove the old keys. Each run is
recorded in the audit trail (keys.rotated)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.audit import actions
from apps.audit.services import record
from apps.imaging import keys
from apps.imaging.blobs import blob_rewrap
from apps.imaging.models import Blob


class Command(BaseCommand):
    help = "Re-wrap data keys with the current master key (no data is re-encrypted)."

    def handle(self, *args, **options):
        current = keys.current_key_id()
        done = 0
        for blob in Blob.objects.exclude(key_id=current).iterator(chunk_size=500):
            done += blob_rewrap(blob, key_id=current)
        uploads = 0
        try:
            from apps.imaging.uploads import upload_rewrap
        except ImportError:  # pragma: no cover
            upload_rewrap = None
        if upload_rewrap is not None:
            uploads = upload_rewrap(key_id=current)
        # key management is a security configuration change: recorded in the global chain (blobs
        # are shared between organizations), figures only
        record(action=actions.KEYS_ROTATED, actor_label="system",
               details={"key_id": current, "blobs": done, "uploads": uploads})
        self.stdout.write(f"re-wrapped {done} blob key(s) and {uploads} upload key(s) with {current}")
