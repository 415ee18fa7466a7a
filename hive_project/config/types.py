"""Value types and validators shared by the configuration's sections."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

STRATEGIES = ("least_loaded", "round_robin", "performance_weighted", "predictive")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
POOL_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
_CAPABILITY = re.compile(r"^[a-z0-9][a-z0-9_.+#-]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")  # what looks like one; JSON braces do not
_ALLOWED_PLACEHOLDER = re.compile(
    r"^(prompt|task_id|workspace|attempt|payload\.[A-Za-z0-9_]+|steps\.[A-Za-z][A-Za-z0-9_-]{0,63}\.(result|output))$"
)
_CALLABLE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*|\.[A-Za-z_]\w*)$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
SYSLOG_FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)


def parse_size(value: str | int) -> int:
    """Bytes in a size such as `10MB`, `512KB`, `1.5GiB` or a plain integer; units are binary (1KB = 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value
    elif isinstance(value, str) and (match := _SIZE.match(value.strip())):
        number = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
        if number >= 1:
            return int(number)
    raise ValueError("a size such as 512KB, 10MB or 1GB")


def _size(value: Any) -> str:
    parse_size(value)
    return f"{value}B" if isinstance(value, int) else value.strip()


def _not_bool(value: Any) -> Any:
    # YAML turns yes/no/on/off into booleans, which pydantic would quietly accept as 1 and 0.
    if isinstance(value, bool):
        raise PydanticCustomError("hive_not_bool", "a number, not true/false")
    return value


def _choice(*choices: str) -> BeforeValidator:
    """Case-insensitive choice, stored upper-case; the error shows the value as written."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in choices:
            return value.strip().upper()
        raise ValueError(f"one of {', '.join(choices)}")

    return BeforeValidator(check)


def _strategy(value: Any) -> Any:
    choices = f"one of {', '.join(STRATEGIES)}"
    if isinstance(value, str):
        value = value.strip().lower()
        if value in STRATEGIES:
            return value
    raise ValueError(choices)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _user_name(value: str | None) -> str | None:
    if value is not None and not _USER_NAME.match(value):
        raise ValueError("a user name of this machine such as hive-agent")
    return value


def _capabilities(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        capability = value.strip().lower()
        if not _CAPABILITY.match(capability):
            raise ValueError(f"capabilities of lowercase letters, digits, '_', '.', '+', '#' or '-' (not {value!r})")
        seen[capability] = None
    if not seen:
        raise ValueError("a non-empty list of capabilities such as [python, api]")
    return list(seen)


def _origin(value: str) -> str:
    if value != "*" and not _ORIGIN.match(value):
        raise ValueError("an origin such as https://example.com (scheme and host, no path) or '*'")
    return value


def _stream_origin(value: str) -> str:
    if value == "*":
        raise ValueError(
            "origins listed one by one, such as https://app.example.com ('*' is refused: any site a signed-in "
            "user visits could read the stream with that user's session cookie)"
        )
    return _origin(value)


def _http_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("a path starting with '/'")
    return value


def _http_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).scheme not in {"http", "https"}:
        raise ValueError("an http:// or https:// URL")
    return value


def _database_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).scheme not in {"sqlite", "postgres", "postgresql", "postgresql+psycopg"}:
        raise ValueError("a URL such as postgresql://user:password@host:5432/name or sqlite:///path/hive.sqlite3")
    return value


def _redis_url(value: str | None) -> str | None:
    if value is not None and (urlsplit(value).scheme not in {"redis", "rediss", "unix"} or "://" not in value):
        raise ValueError("a URL such as redis://host:6379/0, rediss://… or unix:///path/redis.sock")
    return value


def _syslog_address(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str):
        port = value[1]
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
            return (value[0], port)
    raise ValueError("a socket path such as /dev/log, or [host, port]")


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]
Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)]
Fraction = Annotated[float, BeforeValidator(_not_bool), Field(ge=0, le=1)]
Size = Annotated[str, BeforeValidator(_size)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], _choice(*LOG_LEVELS)]
Strategy = Annotated[
    Literal["least_loaded", "round_robin", "performance_weighted", "predictive"], BeforeValidator(_strategy)
]
HttpMethod = Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"], _choice(*HTTP_METHODS)]
Secret = Annotated[str | None, BeforeValidator(_blank_to_none)]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Capabilities = Annotated[list[str], AfterValidator(_capabilities)]
Origins = list[Annotated[str, AfterValidator(_origin)]]
StreamOrigins = list[Annotated[str, AfterValidator(_stream_origin)]]
HttpPath = Annotated[str, AfterValidator(_http_path)]
PoolName = Annotated[str, StringConstraints(pattern=POOL_NAME_PATTERN)]
UserName = Annotated[str | None, BeforeValidator(_blank_to_none), AfterValidator(_user_name)]
UpdateFrequency = Literal["hourly", "daily", "weekly"]


def _field_error(field: str, value: Any, expected: str, *related: str) -> PydanticCustomError:
    """An error about one field found by a check that spans several; `field` is relative to the model."""
    return PydanticCustomError(
        "hive_field", "{field}: {expected}", {"field": field, "expected": expected, "value": value, "related": related}
    )


def _seconds(value: float) -> str:
    return f"{round(value, 2):g}s"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
