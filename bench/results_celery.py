"""The second peer of the hive in `hive bench`: the tiny Celery app of bench/raw_celery.py, plus
django-celery-results storing every task's result in the hive's own database.

It is what a Django shop would pick for durable task results: same Redis, same broker settings,
same worker command line, same spawn of `true`, and one `TaskResult` row written per task (the
default `django-db` backend: a get-or-create and a save in the worker). Django is configured here
by hand with that one app, so nothing of the hive is imported; no Django fix-up runs (Celery
applies it only with DJANGO_SETTINGS_MODULE), so a worker keeps its connection between tasks.

Started by the bench as `celery -A results_celery worker -Q bench.results ...` with this directory
on PYTHONPATH, HIVE_BENCH_BROKER_URL and HIVE_BENCH_DATABASE_URL (sqlite:///path or
postgresql://…, the database the hive uses in the same run) in its environment. `migrate()` makes
its table. Only the peer's processes configure Django here; the bench process imports it as
`bench.results_celery` for its names, sends by name through raw_celery's app and reads the rows
with SQL.
"""

from __future__ import annotations

import os
import subprocess
from urllib.parse import unquote, urlsplit

import django
from celery import Celery
from django.conf import settings

QUEUE = "bench.results"
TABLE = "django_celery_results_taskresult"
PRIORITY = 6


def database(url: str) -> dict:
    """Django's DATABASES entry for the hive's database URL (the same options as the hive's)."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": url.split(":///", 1)[1],
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": parts.port or "",
    }


TASK = "bench.results.spawn_true"

if __name__ == "results_celery":  # the peer's worker (bench/ on its path); the bench imports bench.results_celery
    settings.configure(
        INSTALLED_APPS=["django_celery_results"],
        DATABASES={"default": database(os.environ["HIVE_BENCH_DATABASE_URL"])},
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()

app = Celery("hive_bench_results", set_as_current=False)
app.conf.update(
    broker_url=os.environ.get("HIVE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    broker_transport_options={"priority_steps": [0, 3, 6, 9], "sep": ":", "queue_order_strategy": "priority"},
    result_backend="django-db",
    task_ignore_result=False,
    result_extended=False,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)


@app.task(name=TASK)
def spawn_true() -> None:
    """Pays the same process spawn as a hive task running `true`; its result row is the record."""
    subprocess.run(["true"], check=True)


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", "django_celery_results", interactive=False, verbosity=0)
