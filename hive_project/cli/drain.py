"""`hive drain`: stop agents taking tasks, and optionally wait until what they run has ended.

Kubernetes runs `hive drain --self --wait` in a worker pod's preStop hook, so a pod KEDA (or a
rollout, or a node drain) removes finishes its running attempts before SIGTERM's warm shutdown.
"""

from __future__ import annotations

import socket
import sys
import time

import click

from hive_project.cli import fail, main, setup_django
from hive_project.cli.output import status

POLL_SECONDS = 0.5


@main.command()
@click.argument("agent_name", required=False)
@click.option(
    "--self",
    "this_host",
    is_flag=True,
    help="Drain the agents of this machine: the workers named <pool>@<host> (a pod) or "
    "<pool>-<n>@<host> (hive up), this host's name.",
)
@click.option("--pool", help="With --self: only the agent of this pool.")
@click.option("--wait", is_flag=True, help="Wait until the agent's running attempts have ended; exit 1 on timeout.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds --wait waits at most (default: the longest task timeout of the agents' pools).",
)
def drain(agent_name: str | None, this_host: bool, pool: str | None, wait: bool, timeout: float | None) -> None:
    """Stop an agent taking new tasks; what it runs finishes (exit 0 once drained with --wait)."""
    if bool(agent_name) == this_host:
        fail("give an agent name or --self, not both")
    if pool and not this_host:
        fail("--pool goes with --self")
    setup_django()
    from coordination.fleet import agent_drain

    agents = [_agent_named(agent_name)] if agent_name else _agents_of_this_host(pool)
    if not agents:
        click.echo(f"no live agent on {socket.gethostname()}{f' for pool {pool}' if pool else ''}: nothing to drain")
        return
    agents = [agent_drain(agent=agent) for agent in agents]
    for agent in agents:
        click.echo(f"agent {agent.name} {status(agent.status)}")
    if wait:
        limit = timeout if timeout is not None else max(agent.pool.timeout for agent in agents)
        sys.exit(_wait_drained(agents, limit=limit))


def _agent_named(name: str):
    from agents.models import Agent

    agent = Agent.objects.select_related("pool").filter(name=name).first()
    if agent is None:
        fail(f"not_found: no agent {name!r}")
    return agent


def _agents_of_this_host(pool: str | None) -> list:
    """Live agents whose Celery node name ends in @<host name>, as `-n <pool>@%h` (a pod) and
    hive up's `<pool>-<n>@<host>` name them."""
    from agents.models import Agent

    agents = Agent.objects.live().select_related("pool").filter(name__endswith=f"@{socket.gethostname()}")
    if pool:
        agents = agents.filter(pool__name=pool)
    return list(agents)


def _wait_drained(agents: list, *, limit: float) -> int:
    """0 once none of the agents runs an attempt; 1 when `limit` seconds pass first."""
    from django.db import close_old_connections

    from coordination.fleet import agent_attempts_running

    ids = [agent.id for agent in agents]
    names = ", ".join(agent.name for agent in agents)
    deadline = time.monotonic() + limit
    running = agent_attempts_running(agent_ids=ids)
    if running:
        click.echo(f"waiting for {running} running attempt(s) of {names} (at most {limit:g}s)")
    while running:
        if time.monotonic() >= deadline:
            click.echo(f"hive: timeout: {names} still run {running} attempt(s) after {limit:g}s", err=True)
            return 1
        time.sleep(POLL_SECONDS)
        close_old_connections()
        running = agent_attempts_running(agent_ids=ids)
    click.echo(f"drained: {names} run nothing")
    return 0
