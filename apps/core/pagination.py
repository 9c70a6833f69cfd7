"""One way to cut a long list into pages, for every page that lists rows (the case list, a
case's studies, a study's series, My shares, Shared with me, the members): Django's
``Paginator`` over a queryset (one COUNT and one slice, whatever the number of rows), and
``templates/includes/pagination.html`` saying "Showing 26–50 of 812" with links to the other
pages. A list may grow to thousands of rows as a hospital's data does; none is cut silently."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest

#: rows per page where a list says nothing else
PAGE_SIZE = 25


def page_of(request: HttpRequest, items: Any, *, size: int = PAGE_SIZE, param: str = "page") -> Page:
    """The page of ``items`` (a queryset, ordered; or a list) that ``request`` asks for with
    ``?<param>=N`` (the first for a missing or bad number, the last past the end). The page
    carries ``param`` and ``query`` (the request's other parameters, urlencoded) for the links
    of ``includes/pagination.html``, so a filter or another list's page is kept."""
    page = Paginator(items, size).get_page(request.GET.get(param))
    query = request.GET.copy()
    query.pop(param, None)
    page.param = param  # type: ignore[attr-defined]
    page.query = query.urlencode()  # type: ignore[attr-defined]
    return page
