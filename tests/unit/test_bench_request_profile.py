"""bench/request_profile.py and bench/worker_profile.py, the in-process profilers, answer what they measure."""

from __future__ import annotations

import os
import subprocess
import sys

from hive_project.paths import BASE_DIR


def profile(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bench.<module> ARGS` in a world of its own (its own Redis); fails on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k != "LEANVIBE_REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_request_profile_measures_a_delivery_and_an_alternated_switch():
    done = profile(
        "request_profile",
        "--kind",
        "github",
        "--switch",
        "external_api.api.serializers:TaskCreateSerializer.reuse_fields=False",
        "--block",
        "2",
    )

    assert "github: 201 Created; " in done.stdout
    assert "reuse_fields=True: CPU " in done.stdout and "reuse_fields=False: CPU " in done.stdout


def test_request_profile_answers_a_repeated_delivery_as_a_duplicate():
    done = profile("request_profile", "--kind", "github-again", "-n", "5")

    assert "github-again: 200 OK; " in done.stdout and "5 requests: CPU " in done.stdout


def test_worker_profile_runs_real_tasks_through_execute_task():
    done = profile("worker_profile", "-n", "5")

    assert "5 tasks (25 succeeded in all): " in done.stdout, done.stdout  # 20 warm-up tasks, then these
    assert " ms CPU each (programs " in done.stdout
