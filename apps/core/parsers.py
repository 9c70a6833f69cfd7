"""Request body parsers for the API (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES). A module of its own:
DRF imports these while its views module loads, so it may not import DRF's views (apps.core.api does)."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 for a body nested deeper than Python's decoder goes
    (``[[[[...]]]]`` a few thousand deep): the decoder raises RecursionError, which DRF's parser
    does not catch, so such a body was a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError() from None
