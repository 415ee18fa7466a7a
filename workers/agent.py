"""The agent a worker process acts as, and its heartbeat thread.

The heartbeat also samples the machine's resources (`resources.monitoring`) and reports, with the
sample, the alert levels its thresholds give (`resources.thresholds`, `performance_monitoring.
alert_thresholds`), which beat's monitoring round raises as alerts. Above a limit of
`resources.allocation` the worker stops claiming: it stops consuming the pool's queue, and the
pool processes, which cannot see the main process's memory, find a flag file that makes them
hand any message they already hold back to the queue (deferred, no attempt spent), so the task
runs on another worker. Below every limit again, both are undone.
"""

from __future__ import annotations

import logging
import os
import threading

import psutil
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from agents.models import Agent, AgentPool
from agents.resources import ClaimGate, ResourceSampler, claim_gate, gate_changed, resource_alerts
from coordination.fleet import agent_heartbeat, agent_register, agent_stopped
from coordination.flow import Admission
from coordination.processes import HOSTNAME
from hive_project.paths import var_dir

log = logging.getLogger(__name__)

_agents: dict[str, Agent] = {}

OVER_RESOURCE_LIMITS = Admission(ok=False, retry_after=2.0, reason="resources")


def _gate_file(node_name: str) -> str:
    return os.path.join(var_dir(), "run", f"claims-stopped-{node_name}")


def claims_stopped(node_name: str) -> bool:
    """Has this worker's heartbeat stopped its claims (resources over their limits)? One stat()."""
    return os.path.exists(_gate_file(node_name))


def pool_of_queue(queue: str | None) -> str | None:
    if queue and queue.startswith("hive.") and queue != "hive.control":
        return queue.removeprefix("hive.")
    return None


def current_agent(node_name: str, *, queue: str | None) -> Agent:
    """The Agent row of this worker (cached per process; registered if the worker signal has not)."""
    agent = _agents.get(node_name)
    if agent is not None:
        return agent
    agent = Agent.objects.select_related("pool").filter(name=node_name).first()
    if agent is None:
        pool = AgentPool.objects.get(name=pool_of_queue(queue))
        agent = agent_register(name=node_name, pool=pool, host=HOSTNAME, pid=os.getppid(), concurrency=1)
    _agents[node_name] = agent
    return agent


class Heartbeat(threading.Thread):
    """Runs in the worker's main process: refreshes the agent row and reports load and resources.

    If the reconciler marked the agent offline (the heartbeat was late), it registers again. If an
    operator drains the agent, it tells the consumer to stop taking tasks from the pool's queue.
    """

    def __init__(self, *, agent: Agent, consumer, interval: float) -> None:
        super().__init__(name="hive-heartbeat", daemon=True)
        self.agent = agent
        self.consumer = consumer
        self.interval = interval
        self.stopped = threading.Event()
        self.drained = False
        self.gate: ClaimGate | None = None
        self.sampler: ResourceSampler | None = None

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    self.beat()
                except Exception as exc:  # database away for a moment: try again next beat
                    log.warning("heartbeat of %s failed: %s", self.agent.name, exc)
                    connection.close()
        finally:
            # The connection is this thread's own (Django's are per thread): nobody else closes it,
            # and a stopped heartbeat must not hold a session on the database.
            connection.close()

    def beat(self) -> None:
        """One heartbeat: a single `UPDATE ... RETURNING status` (coordination.fleet.agent_heartbeat).

        The thread keeps its connection between beats and does not check it first (Django's health
        check is a second round trip on every beat): a connection the server dropped fails the
        UPDATE, which is then sent once more on a new connection.
        """
        report = resources() | self.watch_resources()
        try:
            status = agent_heartbeat(agent_id=self.agent.id, resources=report)
        except (InterfaceError, OperationalError):
            connection.close()
            status = agent_heartbeat(agent_id=self.agent.id, resources=report)
        if status is None:
            log.warning("agent %s was marked offline; registering again", self.agent.name)
            self.agent = register(self.agent.name, self.agent.pool, self.agent.concurrency)
        elif status == Agent.Status.DRAINING and not self.drained:
            self.consumer.cancel_task_queue(self.agent.pool.queue)
            self.drained = True

    def watch_resources(self) -> dict:
        """Sample the resources; stop or resume claiming when a limit is crossed. Returns the sample."""
        conf = settings.HIVE_CONFIG.resources
        if self.sampler is None:
            self.sampler = ResourceSampler(conf.monitoring, disk_path=var_dir())
        sample = self.sampler.latest()
        gate = claim_gate(sample, conf.allocation)
        change = gate_changed(self.gate, gate)
        self.gate = gate
        flag = _gate_file(self.agent.name)
        if change == "stopped":
            os.makedirs(os.path.dirname(flag), exist_ok=True)
            open(flag, "w").close()
            self.consumer.cancel_task_queue(self.agent.pool.queue)
            log.warning("agent %s stops claiming: %s", self.agent.name, gate.describe())
        elif change == "resumed":
            if os.path.exists(flag):
                os.unlink(flag)
            if not self.drained:
                self.consumer.add_task_queue(self.agent.pool.queue)
            log.warning("agent %s claims again: %s", self.agent.name, gate.describe())
        usage = settings.HIVE_CONFIG.external_api.performance_monitoring.alert_thresholds
        # The levels under this worker's thresholds; beat's hive.monitor raises and resolves them.
        alerts = [
            {"resource": a.subject, "level": a.level, "value": a.value, "threshold": a.threshold, "source": a.source}
            for a in resource_alerts(sample, thresholds=conf.thresholds, alert_thresholds=usage)
        ]
        over = {"over": list(gate.over)} if gate.over else {}
        return {**sample.as_dict(), "claiming": gate.ok, **over, "alerts": alerts}

    def stop(self) -> None:
        self.stopped.set()
        try:
            os.unlink(_gate_file(self.agent.name))
        except FileNotFoundError:
            pass
        try:
            agent_stopped(agent_id=self.agent.id)
        except Exception as exc:
            log.warning("could not mark %s offline: %s", self.agent.name, exc)


def register(name: str, pool: AgentPool, concurrency: int) -> Agent:
    agent = agent_register(name=name, pool=pool, host=HOSTNAME, pid=os.getpid(), concurrency=concurrency)
    _agents[name] = agent
    return agent


def resources() -> dict:
    """CPU and memory of this worker and its children (the pool processes and agent programs)."""
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    rss = 0
    for p in procs:
        try:
            rss += p.memory_info().rss
        except psutil.Error:
            pass
    return {"rss_mb": round(rss / 2**20, 1), "processes": len(procs)}


def heartbeat_interval() -> float:
    return settings.HIVE_CONFIG.multi_agent.effective_heartbeat_interval
