"""Helpers for the tests that pages stay fast and bounded as an organization's data grows:
the number of queries a page needs (after a first request, so the session and the content
types have settled), and what its pagination says."""

from __future__ import annotations

import re

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def queries_and_html(client: Client, url: str) -> tuple[int, str]:
    """The queries one GET of ``url`` needs once warm, and its HTML (asserting a 200)."""
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx.captured_queries), response.content.decode()


def page_range(html: str) -> str:
    """The page's "Showing 1–25 of 812" line, spaces collapsed ("" when there is one page)."""
    match = re.search(r'data-testid="page-range">(.*?)</p>', html, re.S)
    return " ".join(match.group(1).split()) if match else ""
