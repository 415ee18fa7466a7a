"""Everyday commands: submit, list, inspect and act on tasks, agents and pools."""

from __future__ import annotations

import json
import shlex
import sys
import time

import click

from hive_project.cli import fail, main, require_redis, setup_django
from hive_project.cli.follow import follow
from hive_project.cli.output import ago, clean, seconds, status, table


def _hive_error(exc) -> None:
    fail(f"{exc.code}: {exc.detail}")


@main.command()
@click.argument("prompt", required=False, default="")
@click.option("--command", "command_line", help='Run this command instead of the pool\'s agent, e.g. "pytest -q".')
@click.option("--capability", "-c", "capabilities", multiple=True, required=True, help="Required capability (repeat).")
@click.option("--priority", "-p", default="normal", type=click.Choice(["low", "normal", "high", "critical"]))
@click.option("--type", "task_type", default="general", show_default=True, help="Task type, for statistics.")
@click.option("--complexity", type=click.IntRange(1, 10), help="1 (trivial) to 10: what the models predict from.")
@click.option("--timeout", type=float, help="Seconds one attempt may run (default: the pool's).")
@click.option("--max-attempts", type=int, help="Attempts before the task is dead (default: the pool's).")
@click.option("--payload", help="JSON object of extra fields for the runner.")
@click.option("--idempotency-key", help="Submitting again with the same key returns the first task.")
@click.option("--wait", "-w", is_flag=True, help="Follow the task until it ends; exit 0 only if it succeeded.")
@click.option("--json", "as_json", is_flag=True, help="Print the task as JSON.")
def submit(
    prompt,
    command_line,
    capabilities,
    priority,
    task_type,
    complexity,
    timeout,
    max_attempts,
    payload,
    idempotency_key,
    wait,
    as_json,
) -> None:
    """Submit a task: a PROMPT for the pool's agent, or --command to run."""
    setup_django()
    from coordination import json_limits
    from coordination.errors import HiveError
    from coordination.services import task_submit

    try:
        command = shlex.split(command_line) if command_line else None
    except ValueError as exc:
        fail(f"invalid_task: --command cannot be parsed: {exc}")
    try:
        data = json_limits.loads(payload) if payload else None
    except json_limits.UnsafeJson as exc:
        fail(f"invalid_task: --payload is refused: {exc}")
    except ValueError as exc:
        fail(f"invalid_task: --payload is not JSON: {exc}")
    require_redis()
    try:
        task = task_submit(
            prompt=prompt,
            command=command,
            capabilities=list(capabilities),
            priority=priority,
            task_type=task_type,
            complexity=complexity,
            timeout=timeout,
            max_attempts=max_attempts,
            payload=data,
            idempotency_key=idempotency_key,
            source="cli",
        )
    except HiveError as exc:
        _hive_error(exc)
    if as_json and not wait:
        click.echo(json.dumps(_task_dict(task), indent=2))
        return
    click.echo(f"task {task.id} queued on pool {task.routed_pool.name} (priority {task.priority})")
    if not wait:
        return
    final = follow(str(task.id))
    task.refresh_from_db()
    if as_json:
        click.echo(json.dumps(_task_dict(task), indent=2))
    else:
        _print_result(task)
    sys.exit(0 if final == "succeeded" else 1)


def _print_result(task) -> None:
    attempt = task.attempt_set.order_by("-number").first()
    if attempt and attempt.output_tail:
        click.echo("--- output (last lines) ---")
        click.echo("\n".join(clean(line) for line in attempt.output_tail.splitlines()[-40:]))
        click.echo("---")
    if attempt and attempt.log_path:
        click.echo(f"log: {clean(attempt.log_path)}")
    click.echo(f"task {task.id} {status(task.status)}" + (f": {clean(task.error)}" if task.error else ""))


def _task_dict(task) -> dict:
    return {
        "id": str(task.id),
        "status": task.status,
        "pool": task.pool.name if task.pool else None,
        "agent": task.agent.name if task.agent else None,
        "prompt": task.prompt,
        "command": task.command,
        "capabilities": task.capabilities,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "result": task.result,
        "error": task.error,
        "created_at": task.created_at.isoformat(),
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
    }


@main.command()
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["pending", "queued", "running", "succeeded", "failed", "cancelled", "dead"]),
)
@click.option("--pool")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the tasks (not with --watch).")
def tasks(status_filter, pool, limit, watch, as_json) -> None:
    """List recent tasks."""
    if watch and as_json:
        raise click.UsageError("--json prints the list once; leave out --watch")
    setup_django()
    from django.db import close_old_connections

    from coordination.selectors import tasks_visible_to
    from ml.selectors import task_etas_for

    def listed():
        # the CLI runs on the hive's own machine with its database: an operator, who sees every team's
        qs = tasks_visible_to(team_id=None, staff=True).select_related("pool", "agent").order_by("-created_at")
        if status_filter:
            qs = qs.filter(status=status_filter)
        if pool:
            qs = qs.filter(pool__name=pool)
        return list(qs[:limit])

    if as_json:
        found = listed()
        etas = task_etas_for(found)
        rows = [dict(_task_dict(t), eta=_eta_json(etas.of(t))) for t in found]
        click.echo(json.dumps(rows, indent=2))
        return

    def render() -> str:
        found = listed()
        etas = task_etas_for(found)  # queued and running tasks only; none without a model
        rows = [
            (
                t.short_id,
                status(t.status),
                t.pool.name if t.pool else "-",
                t.agent.name if t.agent else "-",
                f"{t.attempts}/{t.max_attempts}",
                t.priority,
                ago(t.created_at),
                _eta_cell(etas.of(t)),
                clean(t.title())[:60],
            )
            for t in found
        ]
        return table(["ID", "STATUS", "POOL", "AGENT", "TRIES", "PRIORITY", "CREATED", "ETA", "TASK"], rows)

    if not watch:
        click.echo(render())
        return
    try:
        while True:
            close_old_connections()
            click.clear()
            click.echo(render())
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def _eta_cell(eta) -> str:
    """p50-p90 from now, as `hive tasks` shows it ("-" for a task without an ETA)."""
    from hive_project.cli.learning import span

    return "-" if eta is None else f"{span(eta.seconds)}-{span(eta.p90_seconds)}"


def _eta_json(eta) -> dict | None:
    """The ETA keys of GET /api/v1/tasks/<id>/'s `prediction` block (times in ISO 8601)."""
    from ml.selectors import eta_dict

    if eta is None:
        return None
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in eta_dict(eta).items() if k != "reason"}


@main.command()
@click.argument("task_id")
def show(task_id) -> None:
    """Show one task with its attempts and events."""
    setup_django()
    from coordination.errors import HiveError
    from coordination.services import task_get

    try:
        task = task_get(task_id)
    except HiveError as exc:
        _hive_error(exc)
    click.echo(f"task {task.id}  {status(task.status)}")
    pool = task.pool.name if task.pool else "-"
    click.echo(
        clean(
            f"  pool {pool}  priority {task.priority}  type {task.task_type}  "
            f"capabilities {', '.join(task.capabilities)}"
        )
    )
    what = "command " + " ".join(task.command) if task.command else "prompt " + task.prompt
    click.echo(f"  {clean(what)[:300]}")
    if task.error:
        click.echo(f"  error: {clean(task.error)[:500]}")
    if task.status == "queued" and task.hold_reason:
        click.echo(f"  held: {clean(task.hold_reason)[:500]}")
    _show_learning(task)
    attempts = list(task.attempt_set.select_related("agent"))
    if attempts:
        rows = [
            (
                a.number,
                status(a.outcome),
                a.agent.name if a.agent else "-",
                a.exit_code,
                seconds(a.duration),
                a.session_id or "-",
                "-" if a.cost_usd is None else f"${a.cost_usd:.4f}",
                "-" if a.num_turns is None else a.num_turns,
                a.log_path or "-",
            )
            for a in attempts
        ]
        click.echo(table(["#", "OUTCOME", "AGENT", "EXIT", "TIME", "SESSION", "COST", "TURNS", "LOG"], rows))
        for a in attempts:  # what each attempt came to, so a user can resume its session or see why it failed
            if a.error:
                click.echo(f"  #{a.number} error: {clean(a.error)[:500]}")
            elif a.outcome == "succeeded" and (said := _result_text(task.result)):
                click.echo(f"  #{a.number} result: {clean(said)[:500]}")
    for event in task.events.order_by("-id")[:15][::-1]:
        if event.type != "task.progress":
            click.echo(f"  #{event.id} {event.created_at:%H:%M:%S} {clean(event.type)}")


def _show_learning(task) -> None:
    """The ETA of a queued or running task, and the routing decision that placed it."""
    from coordination.models import RoutingDecision
    from hive_project.cli.learning import clock, span
    from ml.selectors import task_prediction

    prediction = task_prediction(task)
    if prediction is not None and prediction["eta_seconds"] is not None:
        click.echo(
            f"  eta: {span(prediction['eta_seconds'])} (p90 {span(prediction['eta_p90_seconds'])}), "
            f"about {clock(prediction['eta'])}; model {prediction['model_version']}"
        )
    elif prediction is not None:
        click.echo(f"  eta: unknown ({clean(prediction['reason'])})")
    decision = RoutingDecision.objects.filter(task_id=task.id).first()
    if decision is not None:
        confidence = "" if decision.confidence is None else f", confidence {decision.confidence:.0%}"
        model = f", model {decision.model_version}" if decision.model_version else ""
        fallback = f", fallback {decision.fallback}" if decision.fallback else ""
        click.echo(
            clean(
                f"  routed by {decision.strategy}{confidence}{model}{fallback}"
                + (f": {decision.reason}" if decision.reason else "")
            )
        )


def _result_text(result: object) -> str:
    """A task's result in one line: Claude's answer, a callable's value or the program's last output."""
    if not isinstance(result, dict):
        return "" if result is None else json.dumps(result)
    for key in ("result", "value", "output"):
        if result.get(key) not in (None, ""):
            value = result[key]
            text = value if isinstance(value, str) else json.dumps(value)
            return " ".join(text.split())
    return ""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the agents.")
def agents(as_json) -> None:
    """List agents (one per pool worker) with their status and load."""
    setup_django()
    from agents.models import Agent

    found = list(Agent.objects.select_related("pool"))
    if as_json:
        click.echo(json.dumps([_agent_dict(a) for a in found], indent=2))
        return
    rows = [
        (
            a.name,
            a.pool.name,
            status(a.status),
            f"{a.load}/{a.concurrency}",
            ago(a.last_heartbeat),
            a.resources.get("rss_mb", "-"),
            a.pid or "-",
        )
        for a in found
    ]
    click.echo(table(["AGENT", "POOL", "STATUS", "LOAD", "HEARTBEAT", "RSS_MB", "PID"], rows))


def _agent_dict(agent) -> dict:
    return {
        "name": agent.name,
        "pool": agent.pool.name,
        "status": agent.status,
        "load": agent.load,
        "concurrency": agent.concurrency,
        "host": agent.host,
        "pid": agent.pid,
        "last_heartbeat": agent.last_heartbeat.isoformat(),
        "started_at": agent.started_at.isoformat(),
        "resources": agent.resources,
    }


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the pools.")
def pools(as_json) -> None:
    """List pools: capabilities, instances (desired by the scaler, actual: agents online, and those
    draining), queue depth and whether their agent program is installed."""
    setup_django()
    from coordination.selectors import pool_instances, pool_queue_depths, pools_with_counts

    pools = list(pools_with_counts())
    depths = pool_queue_depths(pools)
    online = {name: actual for name, _, actual in pool_instances()}

    def actual(p) -> str:
        draining = p.agents_online - online.get(p.name, 0)  # live agents not online are draining
        return f"{online.get(p.name, 0)}" + (f" (+{draining} draining)" if draining > 0 else "")

    if as_json:
        click.echo(
            json.dumps([_pool_dict(p, depths.get(p.queue), online=online.get(p.name, 0)) for p in pools], indent=2)
        )
        return
    rows = [
        (
            p.name,
            ", ".join(p.capabilities),
            p.desired_instances,
            actual(p),
            p.queued,
            depths.get(p.queue, "?"),
            p.running,
            p.concurrency,
            f"{p.min_instances}/{p.max_instances}",
            p.program_missing() or f"{p.program() or 'python'} ok",
        )
        for p in pools
    ]
    click.echo(
        table(
            [
                "POOL",
                "CAPABILITIES",
                "DESIRED",
                "ACTUAL",
                "QUEUED",
                "IN_BROKER",
                "RUNNING",
                "CONC",
                "MIN/MAX",
                "AGENT PROGRAM",
            ],
            rows,
        )
    )


def _pool_dict(pool, in_broker: int | None, *, online: int) -> dict:
    return {
        "name": pool.name,
        "capabilities": pool.capabilities,
        "agents_online": pool.agents_online,
        "actual_instances": online,
        "draining": max(0, pool.agents_online - online),
        "queued": pool.queued,
        "in_broker": in_broker,
        "running": pool.running,
        "concurrency": pool.concurrency,
        "min_instances": pool.min_instances,
        "max_instances": pool.max_instances,
        "desired_instances": pool.desired_instances,
        "program": pool.program(),
        "program_missing": pool.program_missing(),
    }


@main.command("status")
def status_cmd() -> None:
    """A summary of the hive: tasks by status, agents, database and Redis."""
    setup_django()
    from coordination.selectors import agent_counts_by_status, task_counts_by_status
    from hive_project.cli.failures import redis_unreachable_line
    from hive_project.health import readiness

    by_status = task_counts_by_status()
    click.echo("tasks:  " + "  ".join(f"{s} {n}" for s, n in by_status.items()))
    agents = agent_counts_by_status()
    click.echo("agents: " + "  ".join(f"{s} {n}" for s, n in agents.items()))
    redis = readiness()["redis"]
    if not redis.ok:
        click.echo("redis:  unreachable")
        fail(redis_unreachable_line(reason=str(redis.error).splitlines()[0] if str(redis.error) else ""), code=1)
    click.echo("redis:  ok")


def _act(task_id: str, action: str) -> None:
    setup_django()
    if action in ("retry", "redrive"):  # these send the task to its queue again
        require_redis()
    from coordination import services
    from coordination.errors import HiveError

    try:
        task = services.task_get(task_id)
        task = getattr(services, f"task_{action}")(task=task)
    except HiveError as exc:
        _hive_error(exc)
    click.echo(f"task {task.id} {status(task.status)}")


@main.command()
@click.argument("task_id")
def cancel(task_id) -> None:
    """Cancel a queued or running task (its process tree is killed)."""
    _act(task_id, "cancel")


@main.command()
@click.argument("task_id")
def retry(task_id) -> None:
    """Run a failed, cancelled or dead task again."""
    _act(task_id, "retry")


@main.command()
@click.argument("task_id")
def redrive(task_id) -> None:
    """Take a dead task out of the dead-letter state and run it again."""
    _act(task_id, "redrive")


@main.command("check-config")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--explain", is_flag=True, help="Every key: its value, where it came from, and what reads it.")
def check_config(path, explain) -> None:
    """Validate a configuration file (default: LEANVIBE_CONFIG or config/hive.yaml) and the
    LEANVIBE_* variables; print a summary and a line for each key you set that has no effect, or
    one line naming the bad key."""
    from hive_project.config import ConfigError, load_config
    from hive_project.config.describe import describe
    from hive_project.config.explain import explain as explain_config
    from hive_project.config.explain import no_effect_lines

    try:
        config = load_config(path)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    click.echo(explain_config(config) if explain else describe(config))
    for line in no_effect_lines(config):
        click.echo(line)
    from agents.runners.containment import start_check

    # workers started by this user meet the same checks (hive up as root without
    # system.runner_user runs the programs as its own dedicated user instead)
    runners = {name: pool.runner.model_dump(mode="json") for name, pool in config.agents.items()}
    refusals, warnings = start_check(runners, default_user=config.system.runner_user, production=config.production)
    for line in warnings:
        click.echo(f"warning: {line}")
    if refusals:  # one line per refused pool
        for line in refusals[:-1]:
            click.echo(f"hive: {line}", err=True)
        fail(refusals[-1])
    click.echo("configuration ok")


@main.command()
@click.option("--username", default="admin", show_default=True)
@click.option("--password", help="Default: generated and printed once.")
def createadmin(username, password) -> None:
    """Create (or reset) an admin user for the Django admin."""
    setup_django()
    from hive_project.cli.admin_user import ensure_admin

    password = ensure_admin(username, password, reset=True)
    click.echo(f"admin user {username!r} password: {password}")
