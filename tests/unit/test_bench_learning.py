"""The learning bench's own parts: its agent program (run for real) and how adaptation is counted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import learning_agent as table
from bench.learning import moved_off, truly_best
from hive_project.paths import BASE_DIR

PROGRAM = str(BASE_DIR / "bench" / "learning_agent.py")


def agent(pool: str, prompt: str, marker: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-S", PROGRAM, pool, prompt, marker],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "LEARNING_AGENT_TIME_SCALE": "0.01"},  # the draws, not the waits
    )


def test_the_program_fails_with_its_pools_cause_and_repeats_itself_for_one_task(tmp_path):
    # the draws are seeded by the nonce and the pool: these outcomes are fixed (n1 draws a generic failure)
    marker = str(tmp_path / "absent")
    runs = [agent("beta", "build 10 n2", marker) for _ in range(2)]
    assert [r.returncode for r in runs] == [4, 4]
    assert runs[0].stderr.strip() == "linker: out of disk space"
    assert agent("beta", "build 10 n1", marker).returncode == 1
    assert agent("alpha", "lint 9 n2", marker).stderr.strip() == "eslint: cache file is corrupt"
    assert agent("gamma", "lint 9 n2", marker).returncode == 0  # no cause there


def test_the_slowed_pool_takes_longer_while_the_marker_exists(tmp_path):
    marker = tmp_path / "slow"
    normal = agent("alpha", "lint 1 n2", str(marker))
    marker.touch()
    slowed = agent("alpha", "lint 1 n2", str(marker))
    said = [float(r.stdout.split(" in ")[1].rstrip("s\n")) for r in (normal, slowed)]
    assert said[1] == pytest.approx(said[0] * table.SLOW_FACTOR, rel=0.02)
    assert said[0] == pytest.approx(table.mean_seconds("alpha", "lint", 1), rel=0.5)


@pytest.mark.parametrize(
    ("chosen", "moved"),
    [
        (["alpha"] * 5 + ["gamma"] * 10, 5),
        (["alpha"] * 5 + ["gamma"] * 4 + ["alpha"] + ["gamma"] * 5, 5),  # one exploration does not undo it
        (["alpha"] * 5 + ["gamma"] * 9, None),  # not a whole window yet
        (["alpha", "gamma"] * 10, None),  # half the tasks still go there
        (["gamma"] * 10, 0),
    ],
)
def test_moved_off_counts_the_tasks_before_a_window_that_left_the_slowed_pool(chosen, moved):
    assert moved_off(chosen) == moved


def test_the_truly_best_pool_weighs_the_estimated_wait_speed_and_success():
    candidates = [{"pool": "alpha", "wait": 0.0}, {"pool": "beta", "wait": 0.0}, {"pool": "gamma", "wait": 0.0}]
    assert truly_best(candidates, task_type="build", complexity=5, slowed=False) == "alpha"
    assert truly_best(candidates, task_type="build", complexity=5, slowed=True) == "gamma"
    queued = [{"pool": "alpha", "wait": 30.0}, {"pool": "beta", "wait": 0.0}, {"pool": "gamma", "wait": 0.0}]
    assert truly_best(queued, task_type="build", complexity=5, slowed=False) == "gamma"
    # complexity 10: beta's builds always fail there; never the best, however fast
    assert truly_best(queued, task_type="build", complexity=10, slowed=False) == "gamma"
    assert truly_best(candidates[1:2], task_type="build", complexity=10, slowed=False) == "beta"
