"""`hive bench` (and `make bench`): measure the hive against plain Celery on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hive_project.cli import fail, main, setup_django


def _import_path_of_checkout(base: Path) -> None:
    """The harness is a tool of the checkout, not part of the installed package: find it there."""
    if not (base / "bench" / "__init__.py").is_file():
        fail("hive bench runs from a checkout of the project (the bench/ package is not installed): use `make bench`")
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))


@main.command()
@click.option("--tasks", "-n", default=2000, show_default=True, type=click.IntRange(10), help="Tasks in scenario 1.")
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Scenario 1: rounds of every side, one after the other; medians and within-round ratios "
    "(the django-celery-results peer slows down round after round: see docs/benchmarks.md).",
)
@click.option("--latency-tasks", default=200, show_default=True, type=click.IntRange(10), help="Tasks in scenario 2.")
@click.option(
    "--subscribers",
    default=500,
    show_default=True,
    type=click.IntRange(1, 20000),
    help="WebSocket subscribers in scenario 4 (the goal is stated at 2000).",
)
@click.option(
    "--requests",
    "api_requests",
    default=1000,
    show_default=True,
    type=click.IntRange(10),
    help="Requests of each kind in scenario 3, deliveries (half as many) in scenario 5.",
)
@click.option(
    "--learning-tasks",
    default=90,
    show_default=True,
    type=click.IntRange(6),
    help="Scenario 8: the batch each strategy runs (the history is four times as long).",
)
@click.option(
    "--learning-train-rows",
    default=100_000,
    show_default=True,
    type=click.IntRange(100),
    help="Scenario 8: synthetic attempts the training at scale runs on.",
)
@click.option("--quick", is_flag=True, help="Small numbers (200 and 50 tasks) for a check in a minute or two.")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 64),
    help="Worker processes, hive and Celery alike (default: the number of cores).",
)
@click.option("--scenario", "-s", "only", multiple=True, type=int, help="Run only these scenarios (repeat).")
@click.option("--profile", is_flag=True, help="Record py-spy profiles of the worker and the submitter in scenario 1.")
@click.option(
    "--results",
    "results_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the raw numbers go (default: var/bench).",
)
@click.option(
    "--doc",
    "doc_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Markdown report to update (default: docs/benchmarks.md).",
)
@click.option("--no-doc", is_flag=True, help="Do not update the markdown report.")
@click.option("--keep", is_flag=True, help="Keep the run's temporary var directory (logs, database).")
def bench(
    tasks,
    rounds,
    latency_tasks,
    subscribers,
    api_requests,
    learning_tasks,
    learning_train_rows,
    quick,
    concurrency,
    only,
    profile,
    results_dir,
    doc_path,
    no_doc,
    keep,
) -> None:
    """Benchmark the full hive path against raw Celery: throughput, latency, memory.

    Uses PostgreSQL and Redis when LEANVIBE_DATABASE_URL / LEANVIBE_REDIS_URL are set (a scratch
    database that is dropped afterwards; queues of its own), else SQLite and an embedded Redis in
    a temporary directory. Starts real `celery worker` processes for both sides.
    """
    from hive_project.paths import BASE_DIR, var_dir

    _import_path_of_checkout(BASE_DIR)
    from bench import report, scenarios
    from bench.world import BenchError, world_close, world_open

    controlplane_rows = scenarios.Options.controlplane_rows
    if quick:
        tasks, latency_tasks, rounds = min(tasks, 200), min(latency_tasks, 50), 1
        subscribers, api_requests = min(subscribers, 100), min(api_requests, 200)
        learning_tasks, learning_train_rows = min(learning_tasks, 30), min(learning_train_rows, 10_000)
        controlplane_rows = 100_000
    options = scenarios.Options(
        tasks=tasks,
        throughput_rounds=rounds,
        latency_tasks=latency_tasks,
        concurrency=concurrency or os.cpu_count() or 2,
        profile=profile,
        subscribers=subscribers,
        api_requests=api_requests,
        webhook_deliveries=max(10, api_requests // 2),
        learning_history=max(60, 4 * learning_tasks),
        learning_batch=learning_tasks,
        learning_train_rows=learning_train_rows,
        controlplane_rows=controlplane_rows,
        results_dir=(results_dir or var_dir() / "bench").resolve(),
    )
    doc = (doc_path or BASE_DIR / "docs" / "benchmarks.md").resolve()
    chosen = [s for s in scenarios.SCENARIOS if not only or s.number in only]
    try:
        world = world_open(concurrency=options.concurrency, keep=keep)
    except Exception as exc:
        fail(f"bench cannot start: {exc}")
    run = scenarios.Run(world=world, options=options, echo=click.echo)
    try:
        setup_django()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        env = report.environment(run)
        click.echo(
            f"bench: {env['database']}, Redis {env['redis_server']} ({env['redis']}), "
            f"concurrency {options.concurrency}, var {world.var}"
        )
        for scenario in chosen:
            if scenario.run is None:
                click.echo(f"{scenario.number}. {scenario.name}: pending ({scenario.pending})")
                continue
            click.echo(f"{scenario.number}. {scenario.name}")
            before, goals_before = set(run.results), len(run.goals)
            scenario.run(run)
            run.scenario_of.update({name: scenario.number for name in run.results if name not in before})
            run.goal_scenario.update({g.name: scenario.number for g in run.goals[goals_before:]})
    except BenchError as exc:
        world.keep = True
        fail(f"bench failed: {exc}\n(logs kept in {world.var / 'logs'})", code=1)
    finally:
        world_close(world)
    # the report shows every scenario: the ones not run this time keep their last figures (noted)
    report.carry_over(run, [s.number for s in chosen if s.run is not None])
    click.echo("")
    click.echo(report.render_text(run, env))
    for path in report.write_json(run, env):
        click.echo(f"wrote {path}")
    if not no_doc:
        report.write_doc(run, env, doc)
        click.echo(f"wrote {doc}")
