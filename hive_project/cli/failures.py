"""What the `hive` command says when something outside it fails: one line naming the cause and the
fix, never a traceback.

`explain` turns an exception that escaped a command into that line and an exit status: a database
that is not set up, unreachable or locked, a Redis that cannot be reached. Anything else is a bug
in the hive; its traceback goes to var/logs/cli-errors.log and the line says where.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

UNREACHABLE = 1  # exit status when a service is missing; bad input exits 2 (click, `fail`)


@dataclass(frozen=True)
class Explained:
    line: str
    exit_code: int = UNREACHABLE


def explain(exc: BaseException) -> Explained:
    """The line for an exception a command did not handle (and its exit status)."""
    return _database(exc) or _redis(exc) or _unexpected(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


# --- the database ------------------------------------------------------------------------------
def _database(exc: BaseException) -> Explained | None:
    from django.db import DatabaseError

    errors = [e for e in _chain(exc) if isinstance(e, DatabaseError) or _is_driver_error(e)]
    if not errors:
        return None
    text = " ".join(str(e) for e in errors).lower()
    engine, where = database_description()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return Explained(f"the database at {where} is not set up: run `hive up` or `hive migrate`")
    if "no such column" in text or ("column" in text and "does not exist" in text):
        return Explained(f"the database at {where} is from another version of the hive: run `hive migrate`")
    if engine == "sqlite":
        if "locked" in text or "busy" in text:
            return Explained(
                f"the database at {where} is locked by another process: wait for it to finish or stop it, "
                "then try again"
            )
        if "unable to open" in text or "readonly" in text or "read-only" in text:
            return Explained(
                f"cannot open the database at {where}: does its directory exist, and may you write to it? "
                "(set LEANVIBE_VAR_DIR or LEANVIBE_DATABASE_URL)"
            )
    if engine == "postgresql" and _looks_unreachable(text):
        reason = _first_line(errors[-1])
        return Explained(f"cannot reach PostgreSQL at {where}: is it running? ({reason})")
    if engine == "postgresql" and ("authentication" in text or "does not exist" in text or "role" in text):
        reason = _first_line(errors[-1])
        return Explained(f"PostgreSQL at {where} refused the connection: {reason} (check LEANVIBE_DATABASE_URL)")
    return Explained(f"the database at {where} failed: {_first_line(errors[0])}")


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("sqlite3", "psycopg", "psycopg2"))


def _looks_unreachable(text: str) -> bool:
    signs = (
        "connection refused",
        "could not connect",
        "connection failed",
        "timeout expired",
        "no route to host",
        "could not translate host name",
        "server closed the connection",
        "name or service not known",
        "is the server running",
        "connection timed out",
        "terminating connection",
    )
    return any(sign in text for sign in signs)


def database_description() -> tuple[str, str]:
    """("sqlite" or "postgresql" or the engine, where it is: a path, or host:port/name)."""
    try:
        from django.conf import settings

        db = settings.DATABASES["default"]
    except Exception:  # settings not loaded: nothing better to say than the default
        return "sqlite", "var/hive.sqlite3"
    engine = db["ENGINE"].rsplit(".", 1)[-1]
    if engine == "sqlite3":
        return "sqlite", str(db["NAME"])
    if engine == "postgresql":
        return "postgresql", f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}"
    return engine, str(db.get("NAME"))


# --- Redis ---------------------------------------------------------------------------------------
def _redis(exc: BaseException) -> Explained | None:
    import redis
    from kombu.exceptions import OperationalError as BrokerUnreachable

    for error in _chain(exc):
        if isinstance(error, redis.ConnectionError | redis.TimeoutError | BrokerUnreachable):
            return Explained(redis_unreachable_line(reason=_first_line(error)))
    return None


def redis_url_shown() -> str:
    """The Redis URL in use, its password masked."""
    try:
        from django.conf import settings

        url = settings.REDIS_URL
    except Exception:
        return "(unknown)"
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def redis_unreachable_line(*, reason: str = "") -> str:
    from django.conf import settings

    fix = (
        "start the hive with `hive up`, or set LEANVIBE_REDIS_URL"
        if getattr(settings, "EMBEDDED_REDIS", False)
        else "is it running?"
    )
    return f"cannot reach Redis at {redis_url_shown()}: {fix}" + (f" ({reason})" if reason else "")


# --- anything else -------------------------------------------------------------------------------
def _unexpected(exc: BaseException) -> Explained:
    where = _log_traceback(exc)
    saved = f"; the traceback is in {where}" if where else ""
    return Explained(f"unexpected error: {type(exc).__name__}: {_first_line(exc)}{saved}")


def _log_traceback(exc: BaseException) -> str | None:
    try:
        from hive_project.paths import var_dir

        path = var_dir() / "logs" / "cli-errors.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()}\n")
            log.write("".join(traceback.format_exception(exc)))
        return str(path)
    except OSError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
