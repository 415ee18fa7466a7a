"""Submit a batch of marker tasks from a process of its own, so it talks to the scenario's Redis.

The test process is bound to the suite's Redis (settings are read once); a fault scenario runs its
own Redis server, so its tasks are submitted here, with LEANVIBE_REDIS_URL (and, for the PostgreSQL
scenario, LEANVIBE_DATABASE_URL) pointing at the scenario's servers. Prints one JSON line:
{"accepted": [task ids in order], "refused": [errors]}.

    python -m tests.faults.submitter --count 20 --marker-dir DIR [--sleep 0.3] [--duplicate]
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def marker_command(marker: str, sleep: float) -> list[str]:
    """Sleeps, then appends one line (task id and attempt) to the marker: the task's visible effect."""
    return ["sh", "-c", f'sleep {sleep}; echo "$HIVE_TASK_ID $HIVE_ATTEMPT" >> {marker}']


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--marker-dir", required=True)
    parser.add_argument("--first", type=int, default=0, help="index of the first marker file")
    parser.add_argument("--sleep", type=float, default=0.3)
    parser.add_argument("--max-attempts", type=int, default=None)
    parser.add_argument("--command", help="a JSON argv to run instead of the marker command")
    parser.add_argument("--duplicate", action="store_true", help="publish every task's message a second time")
    parser.add_argument("--drop-messages", action="store_true", help="delete the pool's queued messages afterwards")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
    import django

    django.setup()
    from django.conf import settings

    from coordination import dispatch
    from coordination.errors import HiveError
    from coordination.fleet import pool_sync
    from coordination.services import task_submit

    pool_sync(config=settings.HIVE_CONFIG)
    accepted, refused = [], []
    for i in range(args.first, args.first + args.count):
        marker = os.path.join(args.marker_dir, str(i))
        command = json.loads(args.command) if args.command else marker_command(marker, args.sleep)
        try:
            task = task_submit(capabilities=["python"], command=command, max_attempts=args.max_attempts)
        except HiveError as exc:
            refused.append(str(exc))
            continue
        accepted.append(str(task.id))
        if args.duplicate:
            dispatch.dispatch(
                task_id=str(task.id), queue=task.pool.queue, priority=task.broker_priority, timeout=task.timeout
            )
    if args.drop_messages:
        client = dispatch.redis_client()
        client.delete("hive.backend", *(f"hive.backend:{s}" for s in settings.BROKER_PRIORITY_STEPS if s))
    sys.stdout.write(json.dumps({"accepted": accepted, "refused": refused}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
