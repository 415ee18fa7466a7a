"""Where the hive keeps its files on one machine.

`var/` holds the SQLite database, the embedded Redis socket, task logs and workspaces. It sits
next to the code unless LEANVIBE_VAR_DIR points elsewhere (a container's writable volume).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent


_made: set[str] = set()  # var directories this process has made sure of: one mkdir each, not one per call


def var_dir() -> Path:
    given = os.environ.get("LEANVIBE_VAR_DIR") or str(BASE_DIR / "var")
    path = Path(given)
    if given not in _made or not os.path.isdir(given):
        path.mkdir(parents=True, exist_ok=True)
        _made.add(given)
    return path


def embedded_redis_socket() -> Path:
    return var_dir() / "redis.sock"


def task_log_dir() -> Path:
    return var_dir() / "logs" / "tasks"


def workspaces_dir() -> Path:
    return var_dir() / "workspaces"


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PASSABLE_DIR = 0o711  # agent programs running as another user reach their workspace through it


def write_private(path: Path, text: str) -> None:
    """Create `path` holding `text`, readable by this user only from the first byte (no window
    in which a umask-made 0644 file could be read)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), PRIVATE_FILE)  # an existing file keeps its mode through O_CREAT
        f.write(text)


def config_file() -> Path:
    """The configuration file the hive reads (LEANVIBE_CONFIG, else config/hive.yaml)."""
    return Path(os.environ.get("LEANVIBE_CONFIG") or BASE_DIR / "config" / "hive.yaml")


def sqlite_files(databases: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """The files of the SQLite databases among Django's DATABASES (with their -wal, -shm, -journal)."""
    files: list[Path] = []
    for db in databases.values():
        if str(db.get("ENGINE", "")).endswith("sqlite3") and db.get("NAME") and str(db["NAME"]) != ":memory:":
            name = Path(db["NAME"])
            files += [name, *(name.with_name(name.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    return files


def private_paths(databases: Mapping[str, Mapping[str, Any]] | None = None) -> list[Path]:
    """What an agent program must never see: var/ (database, secrets, logs, other workspaces), the
    configuration file, the files LEANVIBE_*_FILE variables read secrets from, the SQLite files."""
    paths = [var_dir(), config_file()]
    paths += [Path(v) for k, v in os.environ.items() if k.startswith("LEANVIBE_") and k.endswith("_FILE") and v]
    return paths + sqlite_files(databases or {})


def protect_private_files(databases: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Close the hive's files to other users, so that an agent program running as the pool's
    user reaches its own workspace and nothing else of var/.

    var/ becomes 0711 (passable to the workspaces, not listable); everything in it but the
    workspaces loses group and other access; logs/ is made 0700 before any log is written; the
    SQLite files become 0600 (SQLite gives a new -wal/-shm the database file's mode). Only what
    this user owns is changed (anything, for root). Returns one line per path that could not be
    closed.
    """
    var = var_dir()
    problems: list[str] = []

    def close(path: Path, mode: int) -> None:
        try:
            st = path.lstat()
            # root (a container's pool worker) also closes a volume the hive's user owns
            if stat.S_ISLNK(st.st_mode) or os.geteuid() not in (0, st.st_uid):
                return
            if stat.S_IMODE(st.st_mode) != mode:
                path.chmod(mode)
        except FileNotFoundError:
            return
        except OSError as exc:
            problems.append(f"cannot close {path} to other users: {exc.strerror or exc}")

    close(var, PASSABLE_DIR)
    (var / "logs").mkdir(mode=PRIVATE_DIR, exist_ok=True)
    workspaces_dir().mkdir(mode=PASSABLE_DIR, exist_ok=True)
    close(workspaces_dir(), PASSABLE_DIR)
    for entry in var.iterdir():
        if entry == workspaces_dir():
            continue
        try:
            mode = stat.S_IMODE(entry.lstat().st_mode)
        except FileNotFoundError:
            continue
        close(entry, mode & 0o700)
    for path in sqlite_files(databases or {}):
        close(path, PRIVATE_FILE)
    return problems
