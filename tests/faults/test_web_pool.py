"""The web process's connection pool rides over a PostgreSQL restart.

On PostgreSQL `hive serve` draws connections from a psycopg pool (database.connection_pool_size
and friends). After the server restarts, every idle pooled connection is dead; the pool checks a
connection before handing it out (CONN_HEALTH_CHECKS), so the first request after the database is
back is answered, and no request waits past `pool_timeout`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from hive_project.launch import free_port, wait_until
from tests.conftest import ROOT, child_env

pytestmark = pytest.mark.faults


def ready(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_web_process_pool_answers_the_first_request_after_a_postgresql_restart(throwaway_postgres, tmp_path):
    pg = throwaway_postgres
    port = free_port()
    env = child_env(LEANVIBE_DATABASE_URL=pg.url, LEANVIBE_DATABASE_POOL_SIZE="2", LEANVIBE_DATABASE_POOL_TIMEOUT="5")
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "hive_project.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def up() -> bool:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return ready(port)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout=30, interval=0.2, what="hive serve ready on the throwaway cluster")
        clients = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        # the pool keeps connection_pool_size (2) connections open, beside this query's own
        pg.wait(lambda: pg.query(clients)[0][0] >= 3, timeout=15, what="the pool's two connections")

        pg.restart(down_for=1.0)
        pg.wait(lambda: pg.query("SELECT 1"), timeout=30, what="the cluster back")

        started = time.monotonic()
        status, body = ready(port)
        assert (status, body["checks"]["database"]) == (200, "ok"), body
        assert time.monotonic() - started < 5
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
