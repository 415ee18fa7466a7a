"""What a Celery worker process loads: none of the HTTP side, none of Celery's command-line umbrella,
no pydantic.

Every module a pool worker's main process imports is held again by each prefork child, so what
hive_project.celery_worker and the worker's settings leave out is saved several times over. The
worker side is set up in a fresh interpreter exactly as a starting worker does it: the entry point
marks the process, Celery's `worker` command and prefork pool load, and the worker's loader runs
django.setup() and imports the task modules.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ENTRY = """
import hive_project.celery_worker as entry
try:
    entry.main(["--no-such-option"])
except SystemExit:
    pass
"""
# The worker's start-up in a fresh interpreter; `mark` is the entry point's first step.
SETUP = """
import json, sys
{mark}
from hive_project.celery import app
import celery.apps.worker, celery.concurrency.prefork
app.loader.init_worker()  # django.setup() through Celery's Django fix-up, then the task modules
from django.conf import settings
print(json.dumps({{"worker": settings.WORKER_PROCESS, "apps": settings.INSTALLED_APPS, "modules": sorted(sys.modules)}}))
"""

# What a worker never uses: the HTTP apps and the API schema, Django's exception reporter (views,
# template tags), and what `celery -A … worker` brings with its umbrella command (the repl of
# `celery amqp` and `celery shell`, the Flower plugin) or Celery's command module (Pygments).
NOT_IN_A_WORKER = [
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.views.debug",
    "celery.bin.celery",
    "click_repl",
    "prompt_toolkit",
    "pygments",
    "flower",
    "tornado",
    # the configuration is validated in a forked child (hive_project/config/snapshot.py)
    "pydantic",
    "pydantic_core",
    "hive_project.config.schema",
    "hive_project.config.loader",
]


def loaded(*, worker: bool) -> dict:
    # The entry point's own start, short of running the worker: its import marks the process,
    # main() loads Celery's worker command and stops at the command line's usage error.
    mark = ENTRY if worker else "import celery.bin.worker"
    out = subprocess.run(
        [sys.executable, "-c", SETUP.format(mark=mark)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def packages(modules: list[str], names: list[str]) -> list[str]:
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


@pytest.fixture(scope="module")
def worker() -> dict:
    return loaded(worker=True)


def test_a_worker_process_loads_no_http_side_and_no_celery_cli(worker: dict) -> None:
    assert worker["worker"] is True
    assert packages(worker["modules"], NOT_IN_A_WORKER) == []


def test_a_worker_still_loads_the_models_it_writes(worker: dict) -> None:
    for app in ("django.contrib.auth", "django.contrib.contenttypes", "agents", "coordination", "external_api", "ml"):
        assert app in worker["apps"]
    assert {"coordination.models", "agents.models", "external_api.models", "workers.tasks"} <= set(worker["modules"])


def test_any_other_process_keeps_every_app() -> None:
    # The same start without the worker's entry point: the check above can tell the difference.
    other = loaded(worker=False)
    assert other["worker"] is False
    assert {"django.contrib.admin", "rest_framework", "drf_spectacular"} <= set(other["apps"])
    assert {"rest_framework", "django.contrib.admin", "django.views.debug", "pydantic"} <= set(
        packages(other["modules"], NOT_IN_A_WORKER)
    )


def test_the_hive_starts_its_workers_through_the_entry_point() -> None:
    from hive_project.launch import WORKER_MODULE, worker_argv

    argv = worker_argv(queue="hive.backend", node="backend@test", concurrency=2)
    assert argv[:3] == [sys.executable, "-m", WORKER_MODULE]
    assert argv[3:7] == ["-Q", "hive.backend", "-n", "backend@test"]
    # another app (the bench's peers) keeps Celery's own command line
    assert worker_argv(queue="q", node="n@h", concurrency=1, app="raw_celery")[1:5] == [
        "-m",
        "celery",
        "-A",
        "raw_celery",
    ]


def test_celery_own_worker_command_line_is_still_a_worker() -> None:
    from hive_project.launch import is_worker_process

    assert is_worker_process(["/venv/bin/celery", "-A", "hive_project", "worker", "-Q", "hive.backend"])
    assert not is_worker_process(["/venv/bin/celery", "-A", "hive_project", "beat"])
