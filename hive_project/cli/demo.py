"""`hive demo`: a mixed batch of real sample tasks on every pool, followed live to the end."""

from __future__ import annotations

import sys
import time

import click

from hive_project.cli import main, require_redis, setup_django
from hive_project.cli.output import seconds, status, table

PY = sys.executable


def samples(capability: str) -> list[dict]:
    """Tasks that really run: compute, write files, fail on purpose, time out on purpose."""
    return [
        {
            "name": "compute primes",
            "expect": "succeeded",
            "command": [
                PY,
                "-c",
                "n=[p for p in range(2, 30000) if all(p % d for d in range(2, int(p**.5) + 1))];"
                "print(len(n), 'primes below 30000, largest', n[-1])",
            ],
        },
        {
            "name": "write files",
            "expect": "succeeded",
            "command": [
                "sh",
                "-c",
                "mkdir -p out && for i in 1 2 3; do echo line $i > out/f$i.txt; done && "
                "cat out/*.txt | wc -l && ls out",
            ],
        },
        {
            "name": "fail on purpose",
            "expect": "dead",
            "max_attempts": 2,
            "command": ["sh", "-c", "echo 'about to fail' && exit 3"],
        },
        {
            "name": "time out on purpose",
            "expect": "dead",
            "max_attempts": 1,
            "timeout": 2,
            "command": ["sh", "-c", "echo sleeping; sleep 30"],
        },
    ]


@main.command()
@click.option("--wait-timeout", default=180.0, show_default=True, help="Give up waiting after this many seconds.")
def demo(wait_timeout) -> None:
    """Submit sample tasks to every pool and show live progress until all are done."""
    setup_django()
    require_redis()
    from django.db import close_old_connections

    from agents.models import AgentPool
    from coordination.models import Task
    from coordination.services import task_submit

    submitted: list[tuple[dict, str, Task]] = []
    for pool in AgentPool.objects.filter(enabled=True, allow_commands=True):
        for sample in samples(pool.capabilities[0]):
            task = task_submit(
                capabilities=[pool.capabilities[0]],
                command=sample["command"],
                task_type=f"demo-{sample['name']}",
                timeout=sample.get("timeout"),
                max_attempts=sample.get("max_attempts"),
                source="demo",
            )
            submitted.append((sample, pool.name, task))
    click.echo(f"submitted {len(submitted)} tasks to {len({p for _, p, _ in submitted})} pools")
    last: dict[str, str] = {}
    deadline = time.monotonic() + wait_timeout
    while time.monotonic() < deadline:
        close_old_connections()
        current = {
            str(t.id): t for t in Task.objects.filter(id__in=[t.id for _, _, t in submitted]).select_related("pool")
        }
        for sample, pool_name, task in submitted:
            now = current[str(task.id)]
            if last.get(str(task.id)) != now.status:
                last[str(task.id)] = now.status
                click.echo(f"{time.strftime('%H:%M:%S')} {pool_name:<15} {sample['name']:<20} {status(now.status)}")
        if all(t.is_terminal for t in current.values()):
            break
        time.sleep(0.3)
    rows = []
    ok = True
    for sample, pool_name, task in submitted:
        task.refresh_from_db()
        attempt = task.attempt_set.order_by("-number").first()
        good = task.status == sample["expect"]
        ok &= good
        rows.append(
            (
                pool_name,
                sample["name"],
                status(task.status),
                sample["expect"],
                task.attempts,
                seconds(attempt.duration if attempt else None),
                (attempt.output_tail.splitlines() or [""])[-1][:50] if attempt else "",
            )
        )
    click.echo("")
    click.echo(table(["POOL", "TASK", "STATUS", "EXPECTED", "TRIES", "LAST TRY", "LAST OUTPUT"], rows))
    click.echo("demo " + ("finished as expected" if ok else "did NOT finish as expected"))
    sys.exit(0 if ok else 1)
