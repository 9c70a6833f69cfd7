"""Delete stored blob files that no blob row names (left by a writer killed between its write and
its commit). Runs daily from celery beat; this command runs it by hand."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from apps.imaging.blobs import ORPHAN_MIN_AGE, blobs_orphans_delete


class Command(BaseCommand):
    help = "Delete stored blob files no blob row names, last written more than --older-than-hours ago."

    def add_arguments(self, parser):
        default = ORPHAN_MIN_AGE / timedelta(hours=1)
        parser.add_argument("--older-than-hours", type=float, default=default,
                            help=f"leave files younger than this (writes in progress); default {default:g}")

    def handle(self, *args, older_than_hours: float, **options):
        if older_than_hours < 1:
            raise CommandError("--older-than-hours must be at least 1: younger files may be writes in progress.")
        deleted = blobs_orphans_delete(older_than=timedelta(hours=older_than_hours))
        self.stdout.write(f"deleted {deleted} stored file(s) that no blob names")
