"""`python -m agents.runners.pycall pkg.mod:func` — the python runner's process.

Loads `task.json` from the workspace (the current directory), calls the function with the task
as a dict and the workspace path, and prints its JSON-serialisable return value on a last line
prefixed `HIVE_RESULT `. An exception exits non-zero with its traceback in the log.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

RESULT_PREFIX = "HIVE_RESULT "


def resolve(path: str):
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m agents.runners.pycall pkg.mod:func", file=sys.stderr)
        return 2
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        import django

        django.setup()
    task = json.loads(Path("task.json").read_text())
    value = resolve(argv[0])(task=task, workspace=Path.cwd())
    print(RESULT_PREFIX + json.dumps(value, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
