"""The scope of the policy's per-request memo (``policy.request_memo``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.sharing import policy


class PolicyMemoMiddleware:
    """Each request builds the filters of a person's live grants once (``policy.request_memo``),
    however many querysets of its middleware, view and templates ask for them; the next request
    builds them again."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with policy.request_memo():
            return self.get_response(request)
