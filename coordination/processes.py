"""Facts about local processes, for recovering attempts whose worker died on this machine."""

from __future__ import annotations

import logging
import os
import signal
import socket
from datetime import datetime

import psutil

log = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()


def process_alive(pid: int, *, since: datetime) -> bool:
    """True if `pid` runs and was started no later than `since` (so it is not a reused pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.create_time() <= since.timestamp() + 1.0
    except psutil.Error:
        return False


def kill_attempt_processes(attempt) -> None:
    """Kill the agent program's process group of an attempt that ran on this host."""
    if attempt.host != HOSTNAME or not attempt.pgid:
        return
    try:
        os.killpg(attempt.pgid, signal.SIGKILL)
        log.info("killed process group %s of lost attempt %s", attempt.pgid, attempt)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("no permission to kill process group %s", attempt.pgid)
