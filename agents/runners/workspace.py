"""A workspace of its own for every attempt: a git worktree of the pool's repository, or a fresh
directory. Released after the attempt unless the pool keeps them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hive_project.paths import workspaces_dir


class WorkspaceError(Exception):
    pass


def workspace_path(spec: dict, task_id: str, attempt: int) -> Path:
    root = Path(spec.get("root") or workspaces_dir())
    return root / task_id / str(attempt)


def prepare(spec: dict, task_id: str, attempt: int) -> Path:
    path = workspace_path(spec, task_id, attempt)
    if path.exists():  # left by a killed worker: start clean
        release(spec, path, force=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = spec.get("repository")
    if not repo:
        path.mkdir()
        return path
    result = subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(path), "HEAD"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        raise WorkspaceError(f"git worktree add failed in {repo}: {result.stderr.strip()[-500:]}")
    return path


def release(spec: dict, path: Path, *, force: bool = False) -> None:
    if spec.get("keep") and not force:
        return
    repo = spec.get("repository")
    if repo:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], capture_output=True, timeout=120
        )
    shutil.rmtree(path, ignore_errors=True)
    if repo:
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True, timeout=120)
