"""Helpers for the tests that pages stay fast and bounded as an organization's data grows:
the number of queries a page needs (after a first request, so the session and the content
types have settled), and what its pagination says."""

from __future__ import annotations

import re
from collections.abc import Callable

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


def first_and_last_of_seven(client: Client, url: str, *, row: str, param: str = "page",
                            anchor: str = "") -> tuple[int, str, str]:
    """A list of 7 rows shown 3 a page (its page size patched to 3): the first page holds 3 rows
    (``row`` counted in its HTML), says "Showing 1–3 of 7" and links to page 2 (``?<param>=2``
    then ``anchor``); the third holds the seventh row. Returns the first page's queries and both
    pages' HTML, for the caller's own checks."""
    queries, first = queries_and_html(client, url)
    assert first.count(row) == 3 and page_range(first) == "Showing 1–3 of 7"
    assert f'href="?{param}=2{anchor}" rel="next"' in first
    _n, last = queries_and_html(client, f"{url}?{param}=3")
    assert last.count(row) == 1 and page_range(last) == "Showing 7–7 of 7"
    return queries, first, last


def pages_of_seven(client: Client, url: str, *, shown_in: Callable[[str], set[str]],
                   param: str = "page") -> list[tuple[str, set[str]]]:
    """Pages 1 to 3 of a list of 7 rows shown 3 a page: each says its range and shows rows
    (``shown_in`` picks them out of its HTML) that no other page showed, 3, 3, then 1. Returns
    each page's HTML and rows, for the caller's own checks."""
    seen: set[str] = set()
    pages = []
    for n, expected in ((1, "Showing 1–3 of 7"), (2, "Showing 4–6 of 7"), (3, "Showing 7–7 of 7")):
        _q, html = queries_and_html(client, f"{url}?{param}={n}")
        assert page_range(html) == expected
        shown = shown_in(html)
        assert len(shown) == (3 if n < 3 else 1) and not shown & seen
        seen |= shown
        pages.append((html, shown))
    return pages


def reads_of(queries: list[str], table: str) -> list[str]:
    """Those of ``queries`` that read ``table`` itself: their main FROM is it (a queryset's
    ``visible_to`` names the membership table only in a subquery of its WHERE, which is not a
    reading of the user's memberships)."""
    return [sql for sql in queries if " FROM " in sql and sql.split(" FROM ", 1)[1].startswith(f'"{table}"')]


def page_queries(client: Client, url: str) -> tuple[int, list[str]]:
    """One warm GET of ``url``: its status and the SQL of its queries."""
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return response.status_code, [q["sql"] for q in ctx.captured_queries]


def policy_grant_reads(queries: list[str]) -> list[str]:
    """The policy's readings of the actor's grants: those addressed to the user for the cases it
    decides on (not a page's own lists of grants: a case's participants, the user's shares of
    it), and those behind the anonymous links the visitor opened (the link table, with its grant)."""
    addressed = [sql for sql in reads_of(queries, "sharing_grant")
                 if '"sharing_grant"."case_id" IN (' in sql and '"grantee_id" = ' in sql]
    behind_links = [sql for sql in reads_of(queries, "sharing_sharelink")
                    if '"sharing_grant"."id"' in sql.split(" FROM ")[0]]
    return addressed + behind_links


def assert_read_once(queries: list[str], *, reader: bool) -> None:
    """The request read the user's memberships once (the middleware's ``request.my_memberships``,
    which the policy's decisions share through ``policy.request_facts``) and, for a ``reader``
    (someone holding grants), their grants once; a staff member's none."""
    memberships = reads_of(queries, "organizations_membership")
    assert len(memberships) == 1, memberships
    grants = policy_grant_reads(queries)
    assert len(grants) == (1 if reader else 0), grants
