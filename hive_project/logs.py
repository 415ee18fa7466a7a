"""Logging from the `logging` section: Django's LOGGING dict, applied by `logging.config.dictConfig`.

- `format: json` writes one JSON object per line (`time`, `level`, `logger`, `message`, and `exc_info`
  with the formatted traceback when there is one); `text` writes `time level logger message`.
- `handlers`: `console` (stderr), `file` (a RotatingFileHandler at `file.path`, rotated at
  `file.max_size` keeping `file.backup_count` old files), `syslog` (a SysLogHandler at
  `syslog.address` with `syslog.facility`). Rotation is per process: processes on one machine
  that write logs to files should each get their own `file.path` (`LEANVIBE_LOGGING_FILE_PATH`).
- The root level is `logging.level` when the file or a variable sets it, else `system.log_level`
  (the guide has both; the logging section is the more specific one).
- `database.echo` sends every SQL statement to the `django.db.backends` logger at DEBUG.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hive_project.config.effects import root_log_level
from hive_project.config.errors import ConfigError

if TYPE_CHECKING:
    from hive_project.config.schema import HiveConfig


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, on one line, whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_file_path(config: HiveConfig, var_dir: Path) -> Path:
    return Path(config.logging.file.path) if config.logging.file.path else var_dir / "logs" / "hive.log"


def logging_settings(config: HiveConfig, *, var_dir: Path) -> dict[str, Any]:
    """The LOGGING dict for these settings. A log file whose directory cannot be made is a
    ConfigError naming `logging.file.path`, not a traceback from dictConfig."""
    section = config.logging
    formatter = "json" if section.format == "json" else "plain"
    handlers: dict[str, dict[str, Any]] = {}
    if "console" in section.handlers:
        handlers["console"] = {"class": "logging.StreamHandler", "formatter": formatter}
    if "file" in section.handlers:
        path = log_file_path(config, var_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError.at(
                "logging.file.path",
                repr(str(path)),
                f"a file in a directory the hive can create ({exc.strerror or exc})",
            ) from None
        handlers["file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "formatter": formatter,
            "filename": str(path),
            "maxBytes": section.file.max_bytes,
            "backupCount": section.file.backup_count,
            "encoding": "utf-8",
            "delay": True,  # a process that logs nothing creates no file
        }
    if "syslog" in section.handlers:
        address = section.syslog.address
        handlers["syslog"] = {
            "class": "logging.handlers.SysLogHandler",
            "formatter": formatter,
            "address": list(address) if isinstance(address, tuple) else address,
            "facility": section.syslog.facility,
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            "json": {"()": "hive_project.logs.JsonLinesFormatter"},
        },
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": root_log_level(config)},
        "loggers": {"django.db.backends": {"level": "DEBUG" if config.database.echo else "WARNING"}},
    }


class LazyExceptionReporter:
    """Django's ExceptionReporter, imported only when a report is made (DEFAULT_EXCEPTION_REPORTER
    in a Celery worker).

    Django's default logging always builds an AdminEmailHandler, which imports its reporter class
    at once: django.views.debug with the views, template tags and filters behind it, ~1.8 MB in a
    worker process and in every pool child, for a report a worker never makes (no ADMINS)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from django.views.debug import ExceptionReporter

        return ExceptionReporter(*args, **kwargs)
