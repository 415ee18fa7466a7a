"""What a contained program can reach: run it as a task's command or as a pool's agent program.

`python3 probe.py '<json spec>'` (standard library only, so the machine's own
Python runs it as any user). The spec: {"read": [files], "list": [dirs], "write": [files],
"connect": [[host, port]]}; `{ppid}` in a path read is the probe's parent pid. Prints one line `PROBE <json>`: who it runs as, the pids it sees,
its environment's names, and for every path or address what happened — "ok" (with what was
read), "denied", "missing", "read-only", or another error.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import socket
import sys


def attempt(action) -> dict:
    try:
        return {"status": "ok", "value": action()}
    except OSError as exc:
        status = {errno.EACCES: "denied", errno.EPERM: "denied", errno.ENOENT: "missing", errno.EROFS: "read-only"}
        return {"status": status.get(exc.errno, f"error {exc.errno}"), "value": str(exc)}


def read(path: str) -> str:
    with open(path.replace("{ppid}", str(os.getppid())), "rb") as f:
        return f.read(4000).decode("utf-8", "replace")


def write(path: str) -> str:
    with open(path, "w") as f:
        f.write("written by the probe\n")
    return "written"


def connect(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=3):
        return "connected"


def main(spec: dict) -> dict:
    return {
        "uid": os.getuid(),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "env": sorted(os.environ),
        "own_workspace": attempt(lambda: write("probe-output.txt")),
        "read": {p: attempt(lambda p=p: read(p)) for p in spec.get("read", [])},
        "list": {p: attempt(lambda p=p: sorted(os.listdir(p))) for p in spec.get("list", [])},
        "write": {p: attempt(lambda p=p: write(p)) for p in spec.get("write", [])},
        "connect": {f"{h}:{p}": attempt(lambda h=h, p=p: connect(h, p)) for h, p in spec.get("connect", [])},
    }


if __name__ == "__main__":
    print("PROBE " + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
