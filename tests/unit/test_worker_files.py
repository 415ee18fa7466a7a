"""The files an attempt needs (var/, the workspace root) are made once per process, and made again
when they have gone meanwhile."""

from __future__ import annotations

import shutil

from agents.runners import workspace
from agents.runners.containment import sandboxed
from hive_project.paths import var_dir


def test_var_dir_is_made_again_after_it_was_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("LEANVIBE_VAR_DIR", str(tmp_path / "var"))
    assert var_dir().is_dir()

    shutil.rmtree(tmp_path / "var")

    assert var_dir() == tmp_path / "var" and (tmp_path / "var").is_dir()


def test_workspace_root_is_passable_again_after_it_was_removed(tmp_path):
    spec = {"root": str(tmp_path / "ws")}
    first = workspace.prepare(spec, "task-a", 1)
    workspace.release(spec, first)
    shutil.rmtree(tmp_path / "ws")

    again = workspace.prepare(spec, "task-b", 1)

    assert again.is_dir() and oct(again.stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "ws").stat().st_mode & 0o777) == "0o711"
    assert oct(again.parent.stat().st_mode & 0o777) == "0o711"


def test_a_released_workspace_leaves_no_directory_behind(tmp_path):
    spec = {"root": str(tmp_path / "ws")}
    for task in ("task-a", "task-b"):
        workspace.release(spec, workspace.prepare(spec, task, 1))

    assert list((tmp_path / "ws").iterdir()) == []


def test_a_task_directory_stays_while_another_attempt_of_it_has_a_workspace(tmp_path):
    spec = {"root": str(tmp_path / "ws")}
    stale = workspace.prepare(spec, "task-a", 1)
    current = workspace.prepare(spec, "task-a", 2)

    workspace.release(spec, stale)
    assert current.is_dir()
    workspace.release(spec, current)
    assert list((tmp_path / "ws").iterdir()) == []


def test_a_kept_workspace_stays(tmp_path):
    spec = {"root": str(tmp_path / "ws"), "keep": True}
    path = workspace.prepare(spec, "task-a", 1)
    workspace.release(spec, path)

    assert path.is_dir()


def test_only_a_bubblewrap_runner_is_sandboxed():
    assert sandboxed({"sandbox": "bubblewrap"})
    assert not sandboxed({"sandbox": "none"})
    assert not sandboxed({})
    assert not sandboxed(None)
