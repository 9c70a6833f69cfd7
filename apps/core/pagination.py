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


def page_of(request: HttpRequest, items: Any, *, size: int = PAGE_SIZE, param: str = "page",
            last_first: bool = False) -> Page:
    """The page of ``items`` (a queryset, ordered; or a list) that ``request`` asks for with
    ``?<param>=N`` (the first for a missing or bad number, the last past the end; with
    ``last_first``, the last when none is asked for: a timeline read oldest first opens on its
    newest entries, and that page takes up to half a page more rather than open on a few). The
    page carries ``param`` and ``query`` (the request's other parameters,
    urlencoded) for the links of ``includes/pagination.html``, so a filter or another list's
    page is kept."""
    paginator = Paginator(items, size, orphans=size // 2 if last_first else 0)
    number = request.GET.get(param)
    if number is None and last_first:
        number = paginator.num_pages
    page = paginator.get_page(number)
    query = request.GET.copy()
    query.pop(param, None)
    page.param = param  # type: ignore[attr-defined]
    page.query = query.urlencode()  # type: ignore[attr-defined]
    return page
