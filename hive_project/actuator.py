"""The local actuator: `hive up` runs N worker processes per pool and follows the pool's desired
count, which beat's scaling decisions (and `hive scale`) write to `AgentPool.desired_instances`.

Instances are Celery workers named `<pool>-<n>@<host>` (n = 1, 2, …, the lowest number free),
each on the pool's queue with its log in `var/logs/worker-<pool>-<n>.log`. `hive drain --self`
finds them by the `@<host>` suffix, as it finds `<pool>@<host>` in a Kubernetes pod.

Every `step()` (hive up calls it twice a second) the actuator reads the desired counts (at most
every `poll_seconds`), then per pool:

- fewer instances up than desired: start the missing ones at once;
- more: retire the surplus, choosing first an instance that crashed (nothing to drain), then one
  still starting (not registered: it runs nothing), then the registered ones with the fewest
  running attempts (idle first), the highest number last started first. A registered instance is
  drained: its agent marked draining (`coordination.fleet.agent_drain`), so its worker stops
  consuming; once it runs no attempt (or the pool's runner.timeout + DRAIN_MARGIN has passed) it
  gets SIGTERM on its main process, Celery's warm shutdown, which still waits for any task it
  runs. A worker that ignores SIGTERM is killed after `stop_grace` seconds only while it runs no
  attempt: scale-in never kills a running attempt;
- an instance that crashed is restarted (with backoff) only while it is still wanted.

An agent an operator drained (`hive drain`, `hive drain --self` before stopping the hive) is
left as it is: it takes no new work and is not replaced, and it is the first registered instance
retired when the pool shrinks.

With `scaling.enabled: false` every pool runs at its configured size, max(1, min_instances), and
the database is not read. The actuator keeps the life of every instance (`spans`), which the
bench adds up into worker-seconds.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

from hive_project.launch import worker_argv
from hive_project.supervision import Child, Echo, log_line, restart_if_dead

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
STOP_GRACE = 15.0
# Beyond the pool's runner.timeout: the runner kills the program at its timeout and Celery's hard
# limit (coordination.dispatch.HARD_LIMIT_MARGIN, 60 s later) ends the task, so by then it is over.
DRAIN_MARGIN = 60.0

UP, DRAINING, STOPPING = "up", "draining", "stopping"


@dataclass(frozen=True)
class PoolPlan:
    """How the actuator runs one pool's workers. `fixed`: scaling is off, run exactly this many."""

    name: str
    concurrency: int
    timeout: float
    fixed: int | None = None


def configured_size(*, min_instances: int, max_instances: int) -> int:
    """A pool's size when nothing scales it: its minimum, at least one (as `hive up` always ran)."""
    return min(max(1, min_instances), max(1, max_instances))


def pool_plans(config: Any) -> list[PoolPlan]:
    """One plan per configured pool (a `HiveConfig`)."""
    scaling = config.scaling.enabled
    return [
        PoolPlan(
            name=name,
            concurrency=spec.concurrency,
            timeout=float(spec.runner.timeout),
            fixed=None
            if scaling
            else configured_size(min_instances=spec.min_instances, max_instances=spec.max_instances),
        )
        for name, spec in config.agents.items()
    ]


def node_name(pool: str, number: int, host: str) -> str:
    """The worker's Celery node name and its agent's name. Every instance carries a number, so
    `a-2` (pool a, instance 2) and `a-2-1` (pool a-2, instance 1) never collide."""
    return f"{pool}-{number}@{host}"


@dataclass
class Span:
    """One run of one instance's process (wall-clock seconds since the epoch)."""

    pool: str
    node: str
    pid: int
    started: float
    ended: float | None = None
    end: str = ""  # drained, crashed (exit n), killed, stopped

    def seconds(self, *, start: float, end: float) -> float:
        """Seconds of this run inside [start, end] (a run still going counts up to `end`)."""
        stop = min(end, self.ended if self.ended is not None else end)
        return max(0.0, stop - max(start, self.started))


@dataclass
class Instance:
    pool: str
    number: int
    node: str
    child: Child
    phase: str = UP
    since: float = 0.0  # monotonic time the phase began
    deadline: float = 0.0  # draining: SIGTERM by then whatever runs
    agent_id: int | None = None
    span: Span | None = None
    said_waiting: bool = False


@dataclass
class LocalActuator:
    plans: Sequence[PoolPlan]
    env: dict[str, str]
    logs: Path
    host: str
    echo: Echo = print
    poll_seconds: float = POLL_SECONDS
    stop_grace: float = STOP_GRACE
    drain_margin: float = DRAIN_MARGIN
    loglevel: str = "INFO"
    instances: dict[str, list[Instance]] = field(default_factory=dict)
    desired: dict[str, int] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    _next_poll: float = 0.0
    _db_warned: float = 0.0

    def __post_init__(self) -> None:
        for plan in self.plans:
            self.instances.setdefault(plan.name, [])
            if plan.fixed is not None:
                self.desired[plan.name] = plan.fixed

    # --- the loop ---------------------------------------------------------------------------------
    def step(self) -> None:
        """One round: read the desired counts when due, then bring every pool towards its count."""
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_seconds
            self._read_desired()
            check_db = True
        else:
            check_db = False
        for plan in self.plans:
            self._follow(plan, now, check_db=check_db)

    def run(self, stop: Event, *, period: float = 0.5) -> None:
        """Step every `period` seconds until `stop` is set, then stop every worker (the bench runs
        this in a thread; `hive up` calls `step` from its own supervision loop)."""
        from django.db import connections

        try:
            while not stop.is_set():
                self.step()
                stop.wait(period)
        finally:
            self.stop_all()  # also when a step failed: no worker outlives its supervisor
            connections.close_all()

    def children(self) -> list[Child]:
        return [inst.child for pool in self.instances.values() for inst in pool]

    def running_processes(self, pool: str) -> int:
        """Worker processes of the pool alive now, retiring ones included."""
        return sum(1 for inst in self.instances.get(pool, []) if inst.child.running())

    def stop_all(self, *, grace: float | None = None) -> None:
        """Warm shutdown of every worker; SIGKILL for those still there after `grace` seconds."""
        grace = self.stop_grace if grace is None else grace
        every = [inst for pool in self.instances.values() for inst in pool]
        for inst in every:
            inst.child.terminate()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(inst.child.running() for inst in every):
            time.sleep(0.2)
        for inst in every:
            if (proc := inst.child.live()) is not None:
                self.echo(f"killing   {inst.child.name} (did not stop in {grace:.0f}s)")
                inst.child.signal(signal.SIGKILL)
                proc.wait()
            self._close(inst, "stopped")
        for pool in self.instances.values():
            pool.clear()

    # --- one pool ------------------------------------------------------------------------------------
    def _follow(self, plan: PoolPlan, now: float, *, check_db: bool) -> None:
        instances = self.instances[plan.name]
        self._reap(instances)
        want = self.desired.get(plan.name)
        if want is None:
            return  # never read: do nothing rather than guess
        up = [inst for inst in instances if inst.phase == UP]
        if len(up) > want and check_db:
            self._scale_in(plan, up, len(up) - want, now)
            up = [inst for inst in instances if inst.phase == UP]
        for inst in up:
            if not inst.child.running() and inst.span is not None:
                self._end_span(inst, f"crashed (exit {inst.child.returncode})")
            if len(up) > want:
                continue  # a crashed instance is restarted only while it is still wanted
            restart_if_dead(inst.child, echo=self.echo)
            if inst.child.running() and inst.span is None:
                self._begin_span(inst)
        for _ in range(want - len(up)):
            if self._start(plan, instances) is None:
                break  # cannot start a process now (said); the next round tries again
        for inst in instances:
            if inst.phase == DRAINING and check_db:
                self._advance_drain(inst, now)
            elif inst.phase == STOPPING and now - inst.since >= self.stop_grace and check_db:
                self._advance_stop(inst)

    def _start(self, plan: PoolPlan, instances: list[Instance]) -> Instance | None:
        taken = {inst.number for inst in instances}
        number = next(n for n in range(1, len(taken) + 2) if n not in taken)
        node = node_name(plan.name, number, self.host)
        argv = worker_argv(queue=f"hive.{plan.name}", node=node, concurrency=plan.concurrency, loglevel=self.loglevel)
        child = Child(f"worker-{plan.name}-{number}", argv, self.logs / f"worker-{plan.name}-{number}.log", self.env)
        inst = Instance(pool=plan.name, number=number, node=node, child=child, since=time.monotonic())
        try:
            child.start()
        except OSError as exc:  # out of processes or file descriptors, a full disk for the log
            self.echo(f"warning   cannot start {child.name}: {exc}")
            child.close_log()
            return None
        self._begin_span(inst)
        instances.append(inst)
        instances.sort(key=lambda i: i.number)
        self.echo(f"started   {child.name} as {node} (pid {child.pid}; {plan.name} wants {self.desired[plan.name]})")
        log_line(child, f"hive up: started {node} (pid {child.pid})")
        return inst

    def _scale_in(self, plan: PoolPlan, up: list[Instance], surplus: int, now: float) -> None:
        """Retire `surplus` instances, the cheapest to lose first (see the module doc)."""
        agents = self._db(lambda: _registered(up))
        busy = self._db(lambda: _running_attempts(agent_id for agent_id, _, _ in (agents or {}).values()))
        if agents is None or busy is None:
            return  # the database is away: scale in next round rather than blind

        def cost(inst: Instance) -> tuple[int, int, int]:
            if not inst.child.running():
                return (0, 0, -inst.number)
            known = agents.get(inst.node)
            if known is None or known[1] != inst.child.pid:
                return (1, 0, -inst.number)
            drained = known[2] == "draining"  # by an operator (`hive drain`): it takes no work already
            return (2 if drained else 3, busy.get(known[0], 0), -inst.number)

        for inst in sorted(up, key=cost)[:surplus]:
            known = agents.get(inst.node)
            self._retire(plan, inst, known[0] if known and known[1] == inst.child.pid else None, busy, now)

    def _retire(self, plan: PoolPlan, inst: Instance, agent_id: int | None, busy: dict, now: float) -> None:
        want = self.desired[plan.name]
        if not inst.child.running():
            self._end_span(inst, f"crashed (exit {inst.child.proc.returncode if inst.child.proc else '?'})")
            self.instances[plan.name].remove(inst)
            inst.child.close_log()
            self.echo(f"retired   {inst.child.name}: crashed, no longer wanted ({plan.name} wants {want})")
            return
        if agent_id is None:  # still starting: it has claimed nothing, a warm shutdown is enough
            inst.phase, inst.since = STOPPING, now
            inst.child.terminate()
            self.echo(f"stopping  {inst.child.name} ({inst.node}, not started yet; {plan.name} wants {want})")
            log_line(inst.child, f"hive up: scale-in: {inst.node} stopped before it took work")
            return
        drained = self._db(lambda: _drain(agent_id))
        if drained is None:
            return  # try again next round
        inst.phase, inst.since, inst.agent_id = DRAINING, now, agent_id
        inst.deadline = now + plan.timeout + self.drain_margin
        running = busy.get(agent_id, 0)
        self.echo(f"draining  {inst.child.name} ({inst.node}, {running} running; {plan.name} wants {want})")
        log_line(inst.child, f"hive up: scale-in: draining {inst.node}; it stops when its {running} attempt(s) end")

    def _advance_drain(self, inst: Instance, now: float) -> None:
        agent_id = inst.agent_id  # set by _retire before the drain; no agent runs no attempt
        running = self._db(lambda: _running_attempts([agent_id]).get(agent_id, 0)) if agent_id is not None else 0
        if running is None:
            return
        if running and now < inst.deadline:
            return
        inst.phase, inst.since = STOPPING, now
        inst.child.terminate()
        if running:
            self.echo(
                f"stopping  {inst.child.name}: drain bound passed with {running} attempt(s) running; "
                "the warm shutdown waits for them"
            )
        else:
            self.echo(f"stopping  {inst.child.name} (drained: runs nothing; warm shutdown)")
        log_line(inst.child, f"hive up: {inst.node} drained; SIGTERM (warm shutdown)")

    def _advance_stop(self, inst: Instance) -> None:
        """The worker had SIGTERM `stop_grace` seconds ago and is still there: kill it only if it
        runs no attempt; a worker finishing an attempt is left to finish."""
        agent_id = inst.agent_id
        if agent_id is None:
            found = self._db(lambda: _registered([inst]))
            if found is None:
                return
            known = found.get(inst.node)
            agent_id = known[0] if known and known[1] == inst.child.pid else None
        running = 0
        if agent_id is not None:
            running = self._db(lambda: _running_attempts([agent_id]).get(agent_id, 0))
            if running is None:
                return
        if running:
            if not inst.said_waiting:
                inst.said_waiting = True
                self.echo(f"waiting   {inst.child.name}: still finishing {running} attempt(s)")
            return
        self.echo(f"killing   {inst.child.name} (no warm shutdown {self.stop_grace:.0f}s after SIGTERM; runs nothing)")
        log_line(inst.child, f"hive up: {inst.node} ignored SIGTERM and runs nothing: SIGKILL")
        inst.child.signal(signal.SIGKILL)

    def _reap(self, instances: list[Instance]) -> None:
        """Forget retiring instances whose process has ended."""
        for inst in [i for i in instances if i.phase != UP and not i.child.running()]:
            code = inst.child.proc.returncode if inst.child.proc else None
            how = "drained" if code == 0 else ("killed" if code == -9 else f"exit {code}")
            self._end_span(inst, how)
            instances.remove(inst)
            inst.child.close_log()
            self.echo(f"stopped   {inst.child.name} ({inst.node}, {how})")
            log_line(inst.child, f"hive up: {inst.node} stopped ({how})")

    # --- the database ---------------------------------------------------------------------------
    def _read_desired(self) -> None:
        wanted = [plan.name for plan in self.plans if plan.fixed is None]
        if not wanted:
            return
        found = self._db(lambda: _desired_counts(wanted))
        if found is not None:
            self.desired.update(found)

    def _db(self, read: Any) -> Any:
        """`read()`, or None when the database fails (said once a minute; the next round retries)."""
        from django.db import close_old_connections, connection

        try:
            close_old_connections()
            return read()
        except Exception as exc:
            connection.close()
            if time.monotonic() - self._db_warned > 60:
                self._db_warned = time.monotonic()
                self.echo(
                    f"warning   the pool workers' actuator cannot use the database ({str(exc).strip()[:200]}); "
                    "it keeps the workers as they are and tries again"
                )
            log.warning("actuator: database read failed: %s", exc)
            return None

    # --- spans ------------------------------------------------------------------------------------
    def _begin_span(self, inst: Instance) -> None:
        inst.span = Span(pool=inst.pool, node=inst.node, pid=inst.child.pid or 0, started=time.time())
        self.spans.append(inst.span)

    def _end_span(self, inst: Instance, how: str) -> None:
        if inst.span is not None and inst.span.ended is None:
            inst.span.ended, inst.span.end = time.time(), how
        inst.span = None

    def _close(self, inst: Instance, how: str) -> None:
        self._end_span(inst, how)
        inst.child.close_log()


def _desired_counts(pools: list[str]) -> dict[str, int]:
    from agents.models import AgentPool

    rows = AgentPool.objects.filter(name__in=pools, enabled=True).values_list("name", "desired_instances")
    found = dict(rows)
    return {name: found.get(name, 0) for name in pools}  # a pool no longer enabled runs nothing


def _registered(instances: Iterable[Instance]) -> dict[str, tuple[int, int | None, str]]:
    """node -> (agent id, pid, status) of the live agents of these instances."""
    from agents.models import Agent

    names = [inst.node for inst in instances]
    rows = Agent.objects.live().filter(name__in=names).values_list("name", "id", "pid", "status")
    return {name: (agent_id, pid, status) for name, agent_id, pid, status in rows}


def _running_attempts(agent_ids: Iterable[int]) -> dict[int, int]:
    from django.db.models import Count

    from coordination.models import TaskAttempt

    ids = list(agent_ids)
    if not ids:
        return {}
    rows = (
        TaskAttempt.objects.filter(agent_id__in=ids, outcome=TaskAttempt.Outcome.RUNNING)
        .order_by()
        .values("agent_id")
        .annotate(n=Count("id"))
        .values_list("agent_id", "n")
    )
    return dict(rows)


def _drain(agent_id: int) -> bool:
    from agents.models import Agent
    from coordination.fleet import agent_drain

    agent_drain(agent=Agent.objects.select_related("pool").get(id=agent_id))
    return True
