"""Secrets in URLs never reach the logs.

Programs may authenticate to the event stream (and the API) with `?api_key=` or `?token=`;
uvicorn and gunicorn write every request line, query string included, to their access logs
(`uvicorn.access`, `gunicorn.access`) and every WebSocket handshake to `uvicorn.error`. `SecretQueryFilter` rewrites
such values to `[redacted]` in the message and its arguments before any handler formats them.
`install()` puts it on the loggers that write request lines; the ASGI and WSGI modules call it,
so a web process started by `hive serve`, `hive up`, a bare `uvicorn hive_project.asgi:application`
or `gunicorn hive_project.wsgi:application` is covered.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
# query parameters that carry a credential (names compared case-insensitively)
SECRET_PARAMETERS = ("api_key", "apikey", "token", "access_token", "refresh_token", "password", "secret", "key")
REQUEST_LOGGERS = (
    "uvicorn.access",
    "uvicorn.error",
    "gunicorn.access",
    "django.server",
    "django.request",
    "daphne.access",
)

_NAMES = "|".join(re.escape(name) for name in SECRET_PARAMETERS)
# a name at the start or after ?, &, ;, a space or a quote; the value runs to the next separator
_SECRET_QUERY = re.compile(rf"(?P<name>(?:^|(?<=[?&;\s\"']))(?:{_NAMES})=)[^&;\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the value of every secret query parameter replaced by `[redacted]`."""
    if "=" not in text:
        return text
    return _SECRET_QUERY.sub(lambda m: m.group("name") + REDACTED, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class SecretQueryFilter(logging.Filter):
    """Rewrites a record's message and string arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            # gunicorn's access log passes its atoms as a dict subclass that answers "-" for a
            # missing key: rewritten in place (they are made for this one record), it keeps that.
            for key, value in list(record.args.items()):
                record.args[key] = _redact_value(value)
        return True


_FILTER = SecretQueryFilter()


def install(logger_names: tuple[str, ...] = REQUEST_LOGGERS) -> None:
    """Add the filter to these loggers (idempotent). A filter on a logger sees the records logged
    on that logger itself, which is where uvicorn and Django write request lines."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
