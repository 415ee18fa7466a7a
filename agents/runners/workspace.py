"""A workspace of its own for every attempt: a git worktree of the pool's repository, or a fresh
directory. Released after the attempt unless the pool keeps them.

Modes keep attempts apart when their programs run as another user (agents.runners.containment):
the workspace root and each task's directory are 0711 (passable, not listable), an attempt's
directory 0700 (the runner hands it to the program's user). Git runs with hooks disabled: a
program that could write the repository's hooks must not get them run by the worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hive_project.paths import workspaces_dir


class WorkspaceError(Exception):
    pass


def root(spec: dict) -> Path:
    """Where the pool's workspaces are made (var/workspaces unless workspace.root says otherwise)."""
    return Path(spec.get("root") or workspaces_dir())


def workspace_path(spec: dict, task_id: str, attempt: int) -> Path:
    return root(spec) / task_id / str(attempt)


PASSABLE = 0o711  # others may pass through to a path they know, never list it
PRIVATE = 0o700
NO_HOOKS = ["-c", "core.hooksPath=/dev/null"]
_passable: set[str] = set()  # workspace roots this process has made and opened (0711)


def prepare(spec: dict, task_id: str, attempt: int) -> Path:
    path = workspace_path(spec, task_id, attempt)
    if path.exists():  # left by a killed worker: start clean
        release(spec, path, force=True)
    top = path.parent.parent
    if str(top) not in _passable or not os.path.isdir(top):  # the root once per process, not per attempt
        _make_passable(top, parents=True)
        _passable.add(str(top))
    _make_passable(path.parent)
    repo = spec.get("repository")
    if not repo:
        try:
            path.mkdir(mode=PRIVATE)
        except FileNotFoundError:  # an earlier attempt's release took the emptied task directory
            _make_passable(path.parent)
            path.mkdir(mode=PRIVATE)
        path.chmod(PRIVATE)  # whatever the umask
        return path
    result = subprocess.run(
        ["git", *NO_HOOKS, "-C", str(repo), "worktree", "add", "--detach", str(path), "HEAD"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise WorkspaceError(f"git worktree add failed in {repo}: {result.stderr.strip()[-500:]}")
    path.chmod(PRIVATE)
    return path


def _make_passable(path: Path, *, parents: bool = False) -> None:
    path.mkdir(mode=PASSABLE, parents=parents, exist_ok=True)
    _chmod_own(path, PASSABLE)


def _chmod_own(path: Path, mode: int) -> None:
    """Set the mode of a directory this process owns (a shared root made by someone else is left as it is)."""
    if path.stat().st_uid == os.geteuid():
        path.chmod(mode)


def release(spec: dict, path: Path, *, force: bool = False) -> None:
    if spec.get("keep") and not force:
        return
    repo = spec.get("repository")
    if repo:
        subprocess.run(
            ["git", *NO_HOOKS, "-C", str(repo), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            timeout=120,
        )
    shutil.rmtree(path, ignore_errors=True)
    try:  # the task's directory goes with its last attempt's: one per task would pile up forever
        path.parent.rmdir()
    except OSError:  # another attempt of the task still has its workspace there, or it is gone
        pass
    if repo:
        subprocess.run(["git", *NO_HOOKS, "-C", str(repo), "worktree", "prune"], capture_output=True, timeout=120)
