"""Stored files that cannot be read or written at the moment (a disk full or unwritable, S3-compatible
storage unreachable): a 503 that says so, not a 500.

Downloads, viewer frames and case attachments read or write blobs inside their views; when the
storage backend fails there, the error (``apps.imaging.storage.STORAGE_ERRORS``) reaches this
middleware, which answers 503 with ``Retry-After``: a page in the reader's language, or JSON for
scripts (the viewer then says the image could not be loaded, not that the file is damaged).
Nothing stored is changed by a failed read. A failure in the middle of a streamed download cannot
change its status any more: the transfer stops, is recorded incomplete, and resumes with Range.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from apps.imaging.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

RETRY_AFTER = "60"


class StorageUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, STORAGE_ERRORS):
            return None
        # with its traceback, at the level of the 500 this replaces: any OSError a view raises
        # comes here, a bug's (a blob missing, a wrong path) as well as an outage's
        logger.error("storage unavailable on %s (%s)", request.method, type(exception).__name__, exc_info=exception)
        message = _(
            "Stored files cannot be read or written at the moment. Nothing stored was lost: try again in a few minutes."
        )
        if "text/html" in request.headers.get("Accept", ""):
            response = render(request, "503_storage.html", {"message": message}, status=503)
        else:
            response = JsonResponse({"error": "storage_unavailable", "detail": message, "message": message}, status=503)
        response["Retry-After"] = RETRY_AFTER
        return response
