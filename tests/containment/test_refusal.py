"""Production refuses to start a pool whose programs would run as root without a sandbox, with one
line that says how to fix it; development warns once. At worker start, in `hive up`, and in
`hive check-config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, child_env

ROOT_LINE = (
    "hive: pool {pool}: its runner would run agent programs and command tasks as root without a sandbox; "
    "set runner.run_as to an unprivileged user or runner.sandbox: bubblewrap"
)
PRODUCTION = {
    "LEANVIBE_ENV": "production",
    "LEANVIBE_SECURITY_SECRET_KEY": "s" * 50,
    "LEANVIBE_SECURITY_JWT_SIGNING_KEY": "j" * 50,
}


def one_pool_config(tmp_path: Path, runner: str = "") -> Path:
    path = tmp_path / "hive.yaml"
    path.write_text(
        f"agents:\n  solo:\n    capabilities: [python]\n    runner: {{argv: [echo, '{{prompt}}']{runner}}}\n"
    )
    return path


def hive_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("hive:")]


@pytest.mark.django_db
def test_pool_worker_in_production_refuses_to_start_with_one_line(runner_user):
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "hive_project",
        "worker",
        "-Q",
        "hive.backend",
        "-n",
        "refused@test",
        "-c",
        "1",
        "--without-gossip",
        "--without-mingle",
    ]

    done = subprocess.run(argv, cwd=ROOT, env=child_env(**PRODUCTION), capture_output=True, text=True, timeout=90)

    assert done.returncode == 2, done.stderr[-2000:]
    assert hive_lines(done.stderr) == [ROOT_LINE.format(pool="backend")]
    assert "Traceback" not in done.stderr


def test_pool_worker_in_development_warns_once_and_runs(hive, runner_user):
    worker = hive.worker("backend")

    log = worker.log_path.read_text()
    assert log.count(ROOT_LINE.format(pool="backend").replace("hive: ", "hive: warning: ")) == 1


def test_check_config_in_production_fails_naming_the_pool_and_the_fix(runner_user, tmp_path):
    config = one_pool_config(tmp_path)
    argv = [sys.executable, "-m", "hive_project.cli", "check-config", str(config)]

    done = subprocess.run(argv, cwd=ROOT, env=child_env(**PRODUCTION), capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [ROOT_LINE.format(pool="solo")]
    assert "configuration ok" not in done.stdout


@pytest.mark.parametrize(
    ("runner", "shown"),
    [
        (", run_as: hive-agent", "as: hive-agent, no sandbox"),
        (
            ", sandbox: bubblewrap, sandbox_network: false",
            "as: the worker's user, in a bubblewrap sandbox (network off)",
        ),
    ],
)
def test_check_config_in_production_accepts_a_run_as_user_or_a_sandbox(runner_user, tmp_path, runner, shown):
    argv = [sys.executable, "-m", "hive_project.cli", "check-config", str(one_pool_config(tmp_path, runner))]

    done = subprocess.run(argv, cwd=ROOT, env=child_env(**PRODUCTION), capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert shown in done.stdout and done.stdout.rstrip().endswith("configuration ok")


def test_check_config_in_development_warns_and_passes(runner_user, tmp_path):
    argv = [sys.executable, "-m", "hive_project.cli", "check-config", str(one_pool_config(tmp_path))]

    done = subprocess.run(
        argv, cwd=ROOT, env=child_env(LEANVIBE_ENV="development"), capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0
    assert "warning: " + ROOT_LINE.format(pool="solo").removeprefix("hive: ") in done.stdout.splitlines()


def test_check_config_refuses_a_run_as_user_this_machine_does_not_have(runner_user, tmp_path):
    argv = [
        sys.executable,
        "-m",
        "hive_project.cli",
        "check-config",
        str(one_pool_config(tmp_path, ", run_as: no-such-runner")),
    ]

    done = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "hive: pool solo: runner.run_as is 'no-such-runner', but there is no user 'no-such-runner' on this machine; "
        "create it or change runner.run_as"
    ]


def test_hive_up_as_root_runs_programs_as_its_own_user_and_refuses_run_as_root_in_production(runner_user, tmp_path):
    config = one_pool_config(tmp_path, ", run_as: root")
    env = {k: v for k, v in child_env(**PRODUCTION).items() if k not in ("LEANVIBE_DATABASE_URL", "LEANVIBE_REDIS_URL")}
    env.update(LEANVIBE_CONFIG=str(config), LEANVIBE_VAR_DIR=str(tmp_path / "var"))
    argv = [sys.executable, "-m", "hive_project.cli", "up", "--port", "1", "--no-flower"]  # refused before it listens

    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "runner    agent programs and command tasks run as hive-agent" in done.stdout
    assert hive_lines(done.stderr) == [ROOT_LINE.format(pool="solo")]
    assert "started" not in done.stdout  # no child was started
