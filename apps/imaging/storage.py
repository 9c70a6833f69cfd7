"""The file system storage backend of the embedded default and of single-host installs.

Django's FileSystemStorage, except that a streamed file is written with O_DIRECT where the file
system allows it (apps.imaging.directio): blob files are written once and not read back soon,
so they need not pass through the page cache. Everything else is Django's: names, folders,
permissions, reading, deleting. Configured in STORAGES by DJANGO_STORAGE_BACKEND=filesystem;
S3-compatible object storage uses django-storages' backend instead.
"""

from __future__ import annotations

import os

from django.core.files.storage import FileSystemStorage
from django.utils._os import safe_makedirs
from django.utils.deconstruct import deconstructible

from apps.imaging.directio import DirectWriter

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # pragma: no cover - django-storages' S3 backend is not installed
    _OBJECT_STORAGE_ERRORS: tuple[type[Exception], ...] = ()
else:
    _OBJECT_STORAGE_ERRORS = (BotoCoreError, ClientError)

#: what a storage backend raises when it cannot be reached or written, for the tasks to retry:
#: OSError from files (disk full, unwritable), botocore's errors from S3-compatible storage
#: (endpoint unreachable, time out, throttling, a 5xx); none is a problem of the file stored
STORAGE_ERRORS: tuple[type[Exception], ...] = (OSError, *_OBJECT_STORAGE_ERRORS)


@deconstructible(path="apps.imaging.storage.DirectFileSystemStorage")
class DirectFileSystemStorage(FileSystemStorage):
    def _save(self, name, content):
        if hasattr(content, "temporary_file_path") or self._allow_overwrite:
            return super()._save(name, content)
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        if self.directory_permissions_mode is not None:
            safe_makedirs(directory, self.directory_permissions_mode, exist_ok=True)
        else:
            os.makedirs(directory, exist_ok=True)
        while True:
            try:
                fd = os.open(full_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
                break
            except FileExistsError:
                name = self.get_available_name(name)
                full_path = self.path(name)
        writer = DirectWriter(fd)
        try:
            for chunk in content.chunks():
                writer.write(chunk.encode() if isinstance(chunk, str) else chunk)
            writer.flush()
        except BaseException:
            os.unlink(full_path)  # no partial file is left under the name
            raise
        finally:
            writer.close()
            os.close(fd)
        if self.file_permissions_mode is not None:
            os.chmod(full_path, self.file_permissions_mode)
        self._ensure_location_group_id(full_path)
        return os.path.relpath(full_path, self.location).replace("\\", "/")
