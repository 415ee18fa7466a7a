"""Flower never runs open: `hive flower` (what `hive up`, compose and Kubernetes start) puts it
behind basic auth from the configuration, generates a password in development, and refuses to
start in production without one. Real Flower processes against the test Redis."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, child_env
from tests.streaming.test_dashboard_browser import free_port

pytestmark = pytest.mark.integration

PRODUCTION = {
    "LEANVIBE_ENV": "production",
    "LEANVIBE_SECURITY_SECRET_KEY": "s" * 50,
    "LEANVIBE_SECURITY_JWT_SIGNING_KEY": "j" * 50,
}


def status_of(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


class Flower:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"flower-{self.port}.log"
        argv = [sys.executable, "-m", "hive_project.cli", "flower", f"--port={self.port}", "--address=127.0.0.1"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=child_env(LEANVIBE_VAR_DIR=str(tmp_path), **env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float = 60) -> Flower:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"flower exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if status_of(f"{self.base}/healthcheck") == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"flower did not answer within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def flowers():
    started: list[Flower] = []
    yield started
    for flower in started:
        flower.stop()


def test_flower_in_development_answers_401_without_the_generated_password(tmp_path, flowers):
    flower = Flower(tmp_path)
    flowers.append(flower)
    flower.wait()
    password = (tmp_path / "flower-password").read_text().strip()
    assert (tmp_path / "flower-password").stat().st_mode & 0o077 == 0
    assert status_of(f"{flower.base}/") == 401
    assert status_of(f"{flower.base}/", "operator", "wrong") == 401
    assert status_of(f"{flower.base}/", "operator", password) == 200
    assert status_of(f"{flower.base}/healthcheck") == 200  # probes need no credentials
    assert f"basic auth for operator (from {tmp_path / 'flower-password'})" in flower.log.read_text()


def test_flower_takes_the_configured_password_and_flowers_own_variable(tmp_path, flowers):
    configured = Flower(tmp_path, LEANVIBE_MONITORING_FLOWER_USERNAME="ops", LEANVIBE_MONITORING_FLOWER_PASSWORD="pw-1")
    by_variable = Flower(tmp_path, **PRODUCTION, FLOWER_BASIC_AUTH="k8s:pw-2")
    flowers.extend([configured, by_variable])
    configured.wait()
    by_variable.wait()
    assert status_of(f"{configured.base}/api/workers") == 401
    assert status_of(f"{configured.base}/", "ops", "pw-1") == 200
    assert status_of(f"{by_variable.base}/") == 401
    assert status_of(f"{by_variable.base}/", "k8s", "pw-2") == 200
    assert not (tmp_path / "flower-password").exists(), "nothing is generated when a password is given"


def test_flower_in_production_without_a_password_does_not_start(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "hive_project.cli", "flower", "--port=1"],
        cwd=ROOT,
        env=child_env(LEANVIBE_VAR_DIR=str(tmp_path), **PRODUCTION),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "hive: configuration error: monitoring.flower.password is empty: production runs Flower only behind a "
        "password (set LEANVIBE_MONITORING_FLOWER_PASSWORD or LEANVIBE_MONITORING_FLOWER_PASSWORD_FILE, or "
        "FLOWER_BASIC_AUTH=user:password)"
    ]
    assert not (tmp_path / "flower-password").exists()


def test_hive_up_runs_flower_through_hive_flower_and_says_where_the_password_is(
    tmp_path, settings, monkeypatch, capsys
):
    from hive_project.cli.up import _flower_login, plan_children

    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    children = plan_children(host="127.0.0.1", port=8000, flower=True, flower_port=5999, env={}, logs=tmp_path)
    (flower,) = [child for child in children if child.name == "flower"]
    assert flower.argv == [sys.executable, "-m", "hive_project.cli", "flower", "--port=5999", "--address=127.0.0.1"]

    settings.VAR_DIR = tmp_path
    assert _flower_login() == f"user 'operator', password in {tmp_path / 'flower-password'}"
    settings.PRODUCTION = True
    with pytest.raises(SystemExit) as stopped:
        _flower_login()
    assert stopped.value.code == 2
    assert "monitoring.flower.password is empty" in capsys.readouterr().err
