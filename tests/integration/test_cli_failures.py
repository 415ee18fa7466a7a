"""No traceback reaches a `hive` user: a database that is not set up, unreachable or locked, an
unreachable Redis, and bad input each give one line naming the cause and the fix, and a non-zero
exit. And what others wrote (a task's prompt) cannot drive the terminal or forge table rows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from coordination.models import Task
from tests.conftest import ROOT, child_env

pytestmark = [pytest.mark.integration]

READ_COMMANDS = [["status"], ["agents"], ["tasks"], ["pools"], ["show", "abcdef12"]]
ANY_COMMANDS = [["status"], ["pools"], ["submit", "-c", "python", "hello"], ["apikey", "list"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hive_project.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    """The single line on stderr (and no traceback anywhere)."""
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def fresh_env(tmp_path) -> dict[str, str]:
    """A new user's machine: an empty var directory, no database or Redis configured."""
    env = {k: v for k, v in os.environ.items() if k not in ("LEANVIBE_DATABASE_URL", "LEANVIBE_REDIS_URL")}
    env.update(LEANVIBE_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def migrated_env(fresh_env) -> dict[str, str]:
    done = run(["migrate"], fresh_env)
    assert done.returncode == 0, done.stderr
    return fresh_env


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: " ".join(a))
def test_cli_before_hive_up_says_the_database_is_not_set_up(fresh_env, args):
    done = run(args, fresh_env)

    path = Path(fresh_env["LEANVIBE_VAR_DIR"]) / "hive.sqlite3"
    assert one_line(done) == f"hive: the database at {path} is not set up: run `hive up` or `hive migrate`"
    assert done.returncode == 1


def test_cli_migrate_sets_the_database_up_and_then_commands_work(migrated_env):
    done = run(["tasks"], migrated_env)

    assert done.returncode == 0 and done.stdout.startswith("ID  ")


@pytest.mark.parametrize("args", ANY_COMMANDS, ids=lambda a: " ".join(a))
def test_cli_with_postgresql_down_says_it_cannot_reach_it(fresh_env, args):
    port = free_port()  # nothing listens there
    env = dict(
        fresh_env,
        LEANVIBE_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/hive",
        LEANVIBE_REDIS_URL=os.environ["LEANVIBE_REDIS_URL"],
    )

    done = run(args, env)

    line = one_line(done)
    assert line.startswith(f"hive: cannot reach PostgreSQL at 127.0.0.1:{port}/hive: is it running? (")
    assert "Connection refused" in line
    assert done.returncode == 1


@pytest.fixture
def empty_postgres_database():
    """A new, empty database on the machine's PostgreSQL (127.0.0.1:5432), dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"hive_cli_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 to make an empty database in ({exc})")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_cli_on_an_empty_postgresql_database_says_it_is_not_set_up(fresh_env, empty_postgres_database):
    env = dict(fresh_env, LEANVIBE_DATABASE_URL=empty_postgres_database)

    done = run(["tasks"], env)

    name = empty_postgres_database.rsplit("/", 1)[-1]
    assert one_line(done) == (
        f"hive: the database at 127.0.0.1:5432/{name} is not set up: run `hive up` or `hive migrate`"
    )
    assert done.returncode == 1


LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # in WAL mode, the only lock that keeps readers out
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE agents_agentpool SET enabled = enabled")
print("locked", flush=True)
time.sleep(300)
"""


def test_cli_on_a_locked_sqlite_database_says_another_process_holds_it(migrated_env):
    path = Path(migrated_env["LEANVIBE_VAR_DIR"]) / "hive.sqlite3"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"

        # waits out the busy timeout (database.pool_timeout), then gives up
        done = run(["tasks"], dict(migrated_env, LEANVIBE_DATABASE_POOL_TIMEOUT="2"), timeout=20)

        assert one_line(done) == (
            f"hive: the database at {path} is locked by another process: wait for it to finish or stop it, "
            "then try again"
        )
        assert done.returncode == 1
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "-c", "python", "hello"],
        ["submit", "--command", "true", "-c", "python", "--wait"],
        ["retry", "abcdef12"],
        ["redrive", "abcdef12"],
        ["demo"],
        ["status"],
    ],
    ids=lambda a: " ".join(a),
)
def test_cli_with_redis_unreachable_says_so_and_stores_nothing(migrated_env, args):
    port = free_port()
    env = dict(migrated_env, LEANVIBE_REDIS_URL=f"redis://127.0.0.1:{port}/0")

    done = run(args, env)

    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hive: cannot reach Redis at redis://127.0.0.1:{port}/0: is it running? (")
    assert done.returncode == 1
    assert "queued on pool" not in done.stdout
    assert len(run(["tasks"], env).stdout.strip().splitlines()) == 2  # the header and its rule: no task


def test_cli_with_the_embedded_redis_not_started_says_run_hive_up(migrated_env):
    done = run(["submit", "-c", "python", "hello"], migrated_env)

    sock = Path(migrated_env["LEANVIBE_VAR_DIR"]) / "redis.sock"
    assert one_line(done).startswith(
        f"hive: cannot reach Redis at unix://{sock}: start the hive with `hive up`, or set LEANVIBE_REDIS_URL ("
    )
    assert done.returncode == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--payload", '{"a": NaN}'], "hive: invalid_task: --payload is refused: NaN is not a JSON number"),
        (["--payload", '{"a": Infinity}'], "hive: invalid_task: --payload is refused: Infinity is not a JSON number"),
        (
            ["--payload", '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"],
            "hive: invalid_task: --payload is refused: JSON nested deeper than 32 levels",
        ),
        (["--payload", "[1]"], "hive: invalid_task: payload must be a JSON object"),
        (["--timeout", "nan"], "hive: invalid_task: timeout must be a number of seconds above 0 and at most 86400"),
    ],
    ids=["nan", "infinity", "deep", "not-an-object", "timeout-nan"],
)
def test_cli_submit_bad_input_is_one_line_and_exit_2(migrated_env, args, says):
    env = dict(migrated_env, LEANVIBE_REDIS_URL=os.environ["LEANVIBE_REDIS_URL"])

    done = run(["submit", "--command", "true", "-c", "python", *args], env)

    assert one_line(done) == says
    assert done.returncode == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tasks", "-n", "-1"], "hive tasks: Invalid value for '--limit' / '-n': -1 is not in the range 1<=x<=10000."),
        (["tasks", "-n", "lots"], "hive tasks: Invalid value for '--limit' / '-n': 'lots' is not a valid integer"),
        (
            ["serve", "--port", "99999"],
            "hive serve: Invalid value for '--port': 99999 is not in the range 1<=x<=65535.",
        ),
        (
            ["webhook", "add", "custom", "--slug", "x", "--rules", "[" * 5000 + "]" * 5000],
            "hive: invalid: --rules is refused: JSON nested deeper than 32 levels",
        ),
    ],
    ids=["negative-limit", "word-limit", "port", "deep-rules"],
)
def test_cli_bad_option_is_one_line_and_exit_2(migrated_env, args, says):
    done = run(args, migrated_env)

    assert one_line(done).startswith(says)
    assert done.returncode == 2


HOSTILE = {
    "osc-title": "\x1b]0;pwned title\x07",
    "osc-hyperlink": "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "csi-clear": "\x1b[2J\x1b[H\x1b[31m",
    "esc-reset": "\x1bc",
    "c0": "\x07\x08\x0b\x0c\x7f",
    "c1": "\x9b2J\x9d0;t\x9c\x85",
    "bidi": "\u202e",
}
FORGED_ROW = "\nabcdef12  succeeded  backend  backend@x  1/3  high  1s ago  forged row\r"


@pytest.mark.django_db(transaction=True)
def test_cli_tasks_and_show_print_no_control_sequences_from_a_prompt(live_pools):
    from coordination.services import task_submit

    prompt = "start " + "".join(f"<{name}:{seq}>" for name, seq in HOSTILE.items()) + FORGED_ROW + " end"
    task = task_submit(capabilities=["python"], prompt=prompt, source="api")

    env = child_env()
    listing = run(["tasks"], env)
    shown = run(["show", task.short_id], env)

    assert listing.returncode == 0 and shown.returncode == 0, listing.stderr + shown.stderr
    for output in (listing.stdout, shown.stdout):
        assert not any(ch in output for ch in "\x1b\x07\x08\x0b\x0c\x7f\r\x85\x9b\x9c\x9d\u202e"), repr(output)
    # what is left of the prompt is its text: every marker emptied but for the hyperlink's label and
    # the space NEL (a line break) becomes
    left = {"osc-hyperlink": "click", "c1": " "}
    cleaned = "".join(f"<{name}:{left.get(name, '')}>" for name in HOSTILE)
    assert f"prompt start {cleaned}" in shown.stdout and "forged row  end" in shown.stdout
    assert "start <osc-title:><osc-hyperlink:click><csi-clear:>" in listing.stdout
    rows = listing.stdout.strip().splitlines()
    assert len(rows) == 3 and rows[2].startswith(task.short_id)  # header, rule, one row: none forged
    assert Task.objects.get().prompt == prompt  # stored as given: cleaning is for the terminal only
