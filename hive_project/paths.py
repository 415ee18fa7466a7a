"""Where the hive keeps its files on one machine.

`var/` holds the SQLite database, the embedded Redis socket, task logs and workspaces. It sits
next to the code unless LEANVIBE_VAR_DIR points elsewhere (a container's writable volume).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    path = Path(os.environ.get("LEANVIBE_VAR_DIR") or BASE_DIR / "var")
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_redis_socket() -> Path:
    return var_dir() / "redis.sock"


def task_log_dir() -> Path:
    return var_dir() / "logs" / "tasks"


def workspaces_dir() -> Path:
    return var_dir() / "workspaces"
