"""Callables for the python runner in tests."""

from __future__ import annotations

from pathlib import Path


def echo_prompt(*, task: dict, workspace: Path) -> dict:
    (workspace / "seen.txt").write_text(task["prompt"])
    print("echo:", task["prompt"])
    return {"echo": task["prompt"], "files": sorted(p.name for p in workspace.iterdir())}
