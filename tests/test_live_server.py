"""The live-server fixture ends a test only once the server has finished the requests it took,
including work done after the client has its last byte (a download's completed-transfer record)."""

from __future__ import annotations

import threading
import time
import urllib.request

from django.http import StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from tests.conftest import live_requests_in_flight

release = threading.Event()
closed = threading.Event()


def _slow_to_close(request):
    def body():
        try:
            yield b"x" * 1000
        finally:
            # as package_response records the transfer: after the last byte, when the stream closes
            release.wait(10)
            closed.set()

    response = StreamingHttpResponse(body())
    response["Content-Length"] = "1000"
    return response


urlpatterns = [path("slow-to-close/", _slow_to_close)]


@override_settings(ROOT_URLCONF=__name__)
def test_a_request_still_closing_after_its_last_byte_is_counted(live_server):
    release.clear()
    closed.clear()
    with urllib.request.urlopen(f"{live_server.url}/slow-to-close/", timeout=10) as response:
        assert response.read() == b"x" * 1000
    deadline = time.monotonic() + 5
    while not live_requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live_requests_in_flight() == 1 and not closed.is_set()
    release.set()
    deadline = time.monotonic() + 5
    while live_requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live_requests_in_flight() == 0 and closed.is_set()
