"""The API's JSON parser: the body's nesting is measured on its bytes before it is parsed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from coordination import json_limits


class BoundedJSONParser(JSONParser):
    """JSONParser that refuses a body nested deeper than json_limits.MAX_JSON_DEPTH (400
    `json_too_deep`) before anything walks it, and NaN/Infinity (400 `parse_error`), as the
    webhooks and the CLI do."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        if json_limits.raw_depth_exceeds(raw):
            raise ParseError(f"JSON nested deeper than {json_limits.MAX_JSON_DEPTH} levels", code="json_too_deep")
        try:
            return json_limits.loads(raw.decode(encoding))
        except (ValueError, LookupError) as exc:  # JSONDecodeError, UnicodeDecodeError, UnsafeJson
            raise ParseError(f"JSON parse error - {exc}") from None
