"""`hive predict`, `hive ml status|train`, `hive insights`, `hive decisions`, `hive submit --complexity`
and the ETAs of `hive tasks` / `hive show`, run as a user runs them: a real process on the test
database, with models trained on a seeded synthetic history."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from coordination.models import Task
from ml.services import ml_train
from tests.conftest import ROOT, child_env
from tests.ml.synthetic import CAPABILITY, build_history, build_profiles

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PREDICTIVE = {"LEANVIBE_MULTI_AGENT_LOAD_BALANCING_STRATEGY": "predictive"}


def hive_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    (line,) = done.stderr.strip().splitlines()
    return line


@pytest.fixture
def trained(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=1)
    build_profiles(ml_pools)
    report = ml_train(kinds=["duration", "success"], seed=0)
    assert [k.status for k in report.kinds] == ["activated", "activated"], report.kinds
    return ml_pools


def test_predict_prints_each_eligible_pool_and_the_model(trained):
    done = hive_cli("predict", "--capability", CAPABILITY, "--type", "build", "--complexity", "5")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["POOL", "P50", "P90", "SUCCESS", "ATTEMPTS", "WAIT", "ETA", "HISTORY"]
    assert [line.split()[0] for line in lines[2:4]] == ["fast", "slow"]
    assert lines[-1] == "model: duration v1, success v1"

    as_json = json.loads(hive_cli("predict", "-c", CAPABILITY, "--type", "build", "--complexity", "5", "--json").stdout)
    fast, slow = as_json
    assert fast["pool"] == "fast" and fast["p50_seconds"] < slow["p50_seconds"]
    assert slow["success_probability"] < fast["success_probability"]


def test_predict_bad_input_is_one_line_and_a_non_zero_exit(trained):
    done = hive_cli("predict", "-c", CAPABILITY, "--complexity", "11")
    assert done.returncode == 2 and "--complexity" in one_error_line(done) and done.stdout == ""

    done = hive_cli("predict", "-c", "cobol")
    assert done.returncode == 2 and one_error_line(done).startswith("hive: no_eligible_pool: no pool offers cobol")


def test_predict_before_any_model_says_so(ml_pools):
    done = hive_cli("predict", "-c", CAPABILITY)

    assert done.returncode == 1
    assert one_error_line(done) == "hive: no_model: no active duration model yet (train one with enough history)"


def test_ml_status_and_train(trained, world):
    done = hive_cli("ml", "status")

    assert done.returncode == 0, done.stderr
    header, _, duration, success = done.stdout.splitlines()
    assert header.split()[:5] == ["KIND", "VERSION", "TRAINED", "SAMPLES", "FEATURES"]
    assert duration.startswith("duration  v1") and " 800 " in duration and "mae_p50" in duration
    assert success.startswith("success   v1") and "brier" in success
    assert duration.split()[-2:] == ["yes", "-"]  # active; no history newer than it yet: no drift

    build_history(world, n=200, pools=trained, seed=2)
    done = hive_cli("ml", "train", "--kind", "duration")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(("duration v2: activated (", "duration v2: kept (")) and "baseline" in first

    rows = json.loads(hive_cli("ml", "status", "--kind", "duration", "--json").stdout)
    assert [(r["kind"], r["version"]) for r in rows] == [("duration", 2), ("duration", 1)]
    assert {"samples", "features", "metrics", "baseline_metrics", "active", "drift", "metric"} <= set(rows[0])


def test_ml_train_while_another_training_runs_exits_1(ml_pools, world):
    from django.core.cache import cache

    from ml.services import LOCK_KEY

    build_history(world, n=200, pools=ml_pools, seed=1)
    assert cache.add(LOCK_KEY, "another trainer", timeout=60)

    done = hive_cli("ml", "train")

    assert done.returncode == 1
    assert one_error_line(done) == "hive: training_locked: another training is running; try again when it has finished"
    assert "duration: locked (another training is running)" in done.stdout


def test_ml_status_without_models_says_how_to_get_one(ml_pools):
    done = hive_cli("ml", "status")

    assert done.returncode == 0 and done.stdout.startswith("no models yet")


def test_insights_list_the_injected_cause_and_the_recommendation(ml_pools, world):
    build_history(world, n=800, pools=ml_pools, seed=1)

    done = hive_cli("insights")

    assert done.returncode == 0, done.stderr
    assert "failure pattern(s) in the last 800 attempts" in done.stdout.splitlines()[0]
    pattern = next(line for line in done.stdout.splitlines() if "xcodebuild" in line)
    assert pattern.split()[:2] == ["slow", "build"]
    assert "pool slow fails task type build" in done.stdout and "route elsewhere" in done.stdout


def test_submit_with_complexity_then_decisions_tasks_and_show(trained):
    done = hive_cli(
        "submit", "--command", "true", "-c", CAPABILITY, "--type", "build", "--complexity", "7", **PREDICTIVE
    )
    assert done.returncode == 0, done.stderr
    task = Task.objects.get(status=Task.Status.QUEUED)
    assert task.complexity == 7 and task.decision.strategy == "predictive"

    listing = hive_cli("decisions")
    assert listing.returncode == 0, listing.stderr
    row = listing.stdout.splitlines()[2]
    assert task.short_id in row and "predictive" in row and "duration v1, success v1" in row and "open" in row

    detail = hive_cli("decisions", "--task", task.short_id)
    assert detail.returncode == 0, detail.stderr
    candidates = [line.split()[0] for line in detail.stdout.splitlines() if line.startswith(("fast ", "slow "))]
    assert sorted(candidates) == ["fast", "slow"]
    assert "BEST IN" in detail.stdout and "predicted:" in detail.stdout

    tasks = hive_cli("tasks")
    header, _, line = tasks.stdout.splitlines()[:3]
    assert "ETA" in header.split() and task.short_id in line
    eta = line[header.index(" ETA ") + 1 :].split()[0]  # the cell under the ETA column
    assert eta != "-" and "-" in eta  # p50-p90
    as_json = json.loads(hive_cli("tasks", "--json").stdout)
    assert as_json[0]["eta"]["model_version"] == "duration v1" and as_json[0]["eta"]["eta_seconds"] > 0

    shown = hive_cli("show", task.short_id)
    assert shown.returncode == 0, shown.stderr
    assert "  eta: " in shown.stdout and "model duration v1" in shown.stdout
    assert "  routed by predictive, confidence" in shown.stdout


def test_submit_with_a_complexity_out_of_range_is_one_line_and_stores_nothing(ml_pools):
    done = hive_cli("submit", "--command", "true", "-c", CAPABILITY, "--complexity", "0")

    assert done.returncode == 2 and "--complexity" in one_error_line(done)
    assert Task.objects.count() == 0


def test_decisions_of_an_unknown_task_or_pool_is_one_line_and_exit_2(ml_pools):
    done = hive_cli("decisions", "--task", "ffffffff")
    assert done.returncode == 2 and one_error_line(done) == "hive: not_found: no task 'ffffffff'"

    done = hive_cli("decisions", "--pool", "nosuch")
    assert done.returncode == 2 and one_error_line(done) == "hive: not_found: no pool 'nosuch'"
