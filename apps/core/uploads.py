"""Files uploaded with a form (a case's report PDF, up to 50 MB) wait in an encrypted temporary
file while the request runs, never in clear in the system's temporary folder.

Django's default ``TemporaryFileUploadHandler`` writes a file larger than
``FILE_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB) to a named ``tmp*.upload`` file there, in clear: a report
naming the patient, its blocks left on the disk after it is removed. ``FILE_UPLOAD_HANDLERS``
keeps Django's memory handler first (small files stay in memory, as before) and puts
``EncryptedFileUploadHandler`` in the temporary file's place: the file's bytes go to an
``apps.core.spool`` (AES-256-CTR under a key held only in memory, unlinked from the start), read
back as a file by forms, validators and storage (``EncryptedUploadedFile``). It has no
``temporary_file_path``: storage copies it (in chunks), never moves it.

Under ASGI the request body itself waits in the same kind of spool (``apps.core.asgi``)."""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from apps.core import spool


class EncryptedUploadedFile(UploadedFile):
    """An uploaded file held in an encrypted spool: read, seek and tell as any file; closed (and
    its key forgotten) with the request, as Django closes uploaded files."""

    def __init__(self, name: str, content_type: str | None, size: int, charset: str | None,
                 content_type_extra: dict | None = None) -> None:
        super().__init__(spool.spool(), name, content_type, size, charset, content_type_extra)

    def close(self) -> None:
        self.file.close()


class EncryptedFileUploadHandler(FileUploadHandler):
    """Django's TemporaryFileUploadHandler, into an encrypted spool (module docstring)."""

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.file = EncryptedUploadedFile(self.file_name, self.content_type, 0, self.charset,
                                          self.content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> EncryptedUploadedFile:
        self.file.seek(0)
        self.file.size = file_size
        return self.file

    def upload_interrupted(self) -> None:
        if hasattr(self, "file"):
            self.file.close()
