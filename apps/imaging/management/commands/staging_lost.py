"""``manage.py staging_lost --yes``: declare the staging folder (LIGHTBOX_UPLOAD_DIR) lost for good.

While the folder (or its ``.lightbox-staging`` marker) is missing and uploads are staged in it,
uploads get 503: the folder is never made again empty on its own, since an unmounted volume would
then lose its files (``uploads.staging_ready``). When the folder and its files are really gone
(the host rebuilt, the volume lost), this ends every upload that needed it (arriving: expired;
ingest queued, running or failed and kept for ``--resume``: failed, its file discarded; each
recorded) and makes the folder again with its marker, so that uploads are taken again.
First check that the volume is mounted: a folder that is only unmounted keeps its files, and
every upload resumes once it is back. Refused while the folder is there with its marker."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.imaging.uploads import StagingNotLost, staging_declare_lost


class Command(BaseCommand):
    help = ("Declare the staging folder (LIGHTBOX_UPLOAD_DIR) and its files lost for good: end the uploads and "
            "ingest jobs that needed it (recorded) and make it again. Check that its volume is mounted first.")

    def add_arguments(self, parser):
        parser.add_argument("--yes", action="store_true",
                            help="confirm: the folder's files are gone for good, not on a volume that is not mounted")

    def handle(self, *args, **options):
        if not options["yes"]:
            raise CommandError("this ends every upload staged in LIGHTBOX_UPLOAD_DIR; if its volume is only not "
                               "mounted, mount it instead. Run again with --yes to declare the folder lost.")
        try:
            counts = staging_declare_lost()
        except StagingNotLost:
            raise CommandError("the staging folder is there with its marker: nothing is lost") from None
        self.stdout.write(f"the staging folder was made again: {counts['uploads_expired']} upload(s) expired, "
                          f"{counts['jobs_failed']} ingest job(s) failed, {counts['uploads_discarded']} failed "
                          "upload(s) discarded; their uploaders are asked to upload again")
