"""Predictions from the active models: per pool for a task about to be routed, and ETAs of tasks.

For a task spec and its eligible pools, `predict_pools` gives, per pool: the p50 and p90 duration
of one attempt, the probability that an attempt succeeds, the expected number of attempts
(1 / p, capped), the expected wait before it starts, and the expected completion time
(wait + p50 × attempts). The wait is the work ahead in the pool (predicted durations of its
queued tasks plus half those of its running ones) divided by its capacity (concurrency × live
agents); none while the pool has a free slot.

The model's durations are then scaled per pool by how the last decisions made with the same
model version turned out there (median of actual / predicted over up to CORRECTION_ROWS closed
decisions, once there are CORRECTION_MIN_ROWS): when a pool slows down, routing sees it within a
handful of tasks instead of at the next retraining. The ratio is taken against the model's own
prediction (`p50_model` in the decision's candidates), never against a corrected one.

Per-pool aggregates (capacity, work ahead, history counts, corrections) are read in four plain SQL
statements and used for at most AGGREGATE_SECONDS after the read began; a decision made meanwhile
adds its task to the picture (`PoolStates.note`), so a burst of submissions does not all see the
same empty pool. A new routing token (coordination.snapshot: a pool's row changed) makes them stale
at once. They are read off the submit path: once a process has routed, a thread of its own reads
them again every REFRESH_SECONDS (and keeps the active-models and routing-weights checks fresh)
until REFRESH_IDLE_SECONDS pass without a decision, so tasks submitted one at a time are routed on
figures under AGGREGATE_SECONDS old without reading them themselves. Only when the figures are older
than that (no refresher: inside a transaction, a process's first decision, a refresher behind) does
the decision read them itself.

numpy is imported inside functions: pool workers import this module (through the app registry)
but never predict.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections, connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from agents.models import Agent, AgentPool, PerformanceProfile
from agents.profiles import PoolRecord, records_of
from coordination.models import BROKER_PRIORITY, Priority, RoutingDecision, Task
from coordination.routing import TaskSpec, capacity_of, pool_capacity
from coordination.snapshot import cached_snapshot
from ml.features import task_rows
from ml.registry import Active, Loaded, active_models

log = logging.getLogger(__name__)

AGGREGATE_SECONDS = 1.0  # the oldest pool figures a decision uses; older ones it reads itself
# How often a routing process's refresher reads the figures again; None: no refresher (the tests,
# which route inside transactions a thread's connection cannot see).
REFRESH_SECONDS: float | None = 0.25
REFRESH_IDLE_SECONDS = 15.0  # the refresher stops this long after the last decision
CORRECTION_ROWS = 20
CORRECTION_MIN_ROWS = 5
CORRECTION_BOUNDS = (0.1, 10.0)
SUCCESS_FLOOR = 0.02  # expected attempts are capped at 1 / SUCCESS_FLOOR = 50
RUNNING_REMAINING = 0.5  # a running task has, on average, half its predicted duration left


class NoModel(Exception):
    """No usable duration model: predictions cannot be made (the reason is the message)."""


@dataclass(frozen=True)
class PoolPrediction:
    pool: str
    pool_id: int
    p50: float
    p90: float
    success: float
    attempts: float
    p50_model: float  # before the pool's correction
    correction: float
    wait: float
    expected: float
    history: int
    success_source: str
    model_version: str


@dataclass
class PoolState:
    capacity: int
    running: int = 0
    queued: int = 0
    work: float = 0.0  # seconds of predicted work ahead (running counted at RUNNING_REMAINING)
    unknown: int = 0  # active tasks without a predicted duration
    records: dict[str, PoolRecord] = field(default_factory=dict)  # task type -> record
    correction: float = 1.0  # actual / predicted duration lately, for the model it was read for

    def wait(self, *, fill: float) -> float:
        """Seconds before a new task would start; `fill` stands in for tasks never predicted."""
        if self.running + self.queued < self.capacity:
            return 0.0
        return (self.work + self.unknown * fill) / max(1, self.capacity)

    def add(self, seconds: float | None) -> None:
        """Count a task just queued here (`seconds`: its predicted duration, None if unknown)."""
        self.queued += 1
        if seconds is None:
            self.unknown += 1
        else:
            self.work += seconds


class PoolStates:
    """Per-pool aggregates of this process, each used for at most `max_age` seconds after its read
    began, and read again in the background every REFRESH_SECONDS while decisions are made.

    `refresh=False`: no background reads (a decision reads what is older than `max_age`).
    `also` runs after each background read (the strategy keeps its other checks fresh with it).
    """

    def __init__(
        self,
        *,
        max_age: float = AGGREGATE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        refresh: bool = True,
        also: Callable[[], object] | None = None,
    ) -> None:
        self.max_age = max_age
        self.clock = clock
        self.refresh_ahead = refresh
        self.also = also
        self._states: dict[int, PoolState] = {}
        self._read_at: dict[int, float] = {}
        self._model = ""
        self._token: int | None = None  # the routing token the figures were read under
        self._pools: dict[int, AgentPool] = {}  # what the refresher reads: the pools decisions asked about
        self._notes: deque[tuple[float, int, float | None]] = deque()  # (when, pool id, seconds), oldest first
        self._used_at = -float("inf")
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        _all_states.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's refresher did not come along (the next decision starts one)."""
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def get(self, pools: Sequence[AgentPool], *, model: str = "", token: int | None = None) -> dict[int, PoolState]:
        """States of `pools`; `model` is the duration model's label (corrections belong to it);
        `token` the routing token the pools were read under (default: this process's snapshot's)."""
        if token is None:
            snapshot = cached_snapshot()
            token = snapshot.token if snapshot is not None else None
        now = self.clock()
        with self._lock:
            if model != self._model or (token is not None and token != self._token):
                # a new version (its predictions have no track record yet) or a changed pool row
                self._read_at.clear()
                self._pools.clear()
                self._model = model
                self._token = token if token is not None else self._token
            stale = [p for p in pools if now - self._read_at.get(p.id, -float("inf")) >= self.max_age]
            if stale:
                for pool_id, state in read_pool_states(stale, model=model).items():
                    self._states[pool_id] = state
                    self._read_at[pool_id] = now
            self._used_at = now
            self._pools.update((p.id, p) for p in pools)
            states = {p.id: self._states[p.id] for p in pools}
        self._keep_fresh()
        return states

    def refresh(self) -> None:
        """Read the figures of the pools decisions asked about again, and put them in place unless
        the model or the routing token changed meanwhile; tasks noted since the read began are
        counted again (a task committed before the read is then counted twice until the next one:
        the wait errs long, never short)."""
        with self._lock:
            pools, model, token = list(self._pools.values()), self._model, self._token
        if not pools:
            return
        started = self.clock()
        fresh = read_pool_states(pools, model=model)
        with self._lock:
            if model != self._model or token != self._token:
                return
            for pool_id, state in fresh.items():
                if self._read_at.get(pool_id, -float("inf")) > started:
                    continue  # a decision read it itself meanwhile: newer
                for at, noted, seconds in self._notes:
                    if noted == pool_id and at >= started:
                        state.add(seconds)
                self._states[pool_id] = state
                self._read_at[pool_id] = started

    def records(self, pools: Sequence[AgentPool]) -> dict[tuple[int, str], PoolRecord]:
        """(pool id, task type) -> record, as last read (no query): for a fallback right after `get`."""
        with self._lock:
            return {(p.id, t): r for p in pools if p.id in self._states for t, r in self._states[p.id].records.items()}

    def note(self, pool_id: int, *, seconds: float | None) -> None:
        """A task was just routed to `pool_id`: count it until the next read."""
        with self._lock:
            now = self.clock()
            # a read that began before `now - max_age` is stale when it lands: its notes can go
            while self._notes and self._notes[0][0] < now - self.max_age:
                self._notes.popleft()
            self._notes.append((now, pool_id, seconds))
            state = self._states.get(pool_id)
            if state is not None:
                state.add(seconds)

    def _keep_fresh(self) -> None:
        """Start the refresher if this process may have one and has none running."""
        every = REFRESH_SECONDS
        if not self.refresh_ahead or every is None or every >= self.max_age or connection.in_atomic_block:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, args=(every,), name="hive-pool-states", daemon=True)
            self._thread.start()

    def _run(self, every: float) -> None:
        """The refresher: read again every `every` seconds until idle or stopped (own connection)."""
        try:
            while not self._stop.wait(every):
                with self._lock:
                    if self.clock() - self._used_at > REFRESH_IDLE_SECONDS:
                        self._thread = None
                        return
                try:
                    self.refresh()
                    if self.also is not None:
                        self.also()
                except Exception:  # the database away: decisions read themselves meanwhile
                    log.warning("pool figures not refreshed", exc_info=True)
                    close_old_connections()
        finally:
            connection.close()
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def stop(self) -> None:
        """Stop the refresher (if any) and wait for it."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join()


_all_states: weakref.WeakSet[PoolStates] = weakref.WeakSet()


def _after_fork() -> None:
    for states in list(_all_states):
        states._after_fork()


os.register_at_fork(after_in_child=_after_fork)


def read_pool_states(pools: Sequence[AgentPool], *, model: str = "") -> dict[int, PoolState]:
    """Capacity, active tasks and their predicted work, history per task type and the duration
    correction under `model`, for `pools`.

    Plain SQL on one cursor: this runs on the submit path whenever the cache has expired (every
    decision when tasks come one at a time), and compiling the equivalent ORM queries costs about
    ten times what running them does (tests/ml/measure.py, one_at_a_time).
    """
    ids = [p.id for p in pools]
    if not ids:
        return {}
    among = ", ".join(["%s"] * len(ids))
    task, decision = Task._meta.db_table, RoutingDecision._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pool_id, COUNT(*) FROM {Agent._meta.db_table} WHERE pool_id IN ({among}) AND status <> %s "
            f"GROUP BY pool_id",
            [*ids, Agent.Status.OFFLINE.value],
        )
        capacity = capacity_of(pools, live=dict(cursor.fetchall()))
        states = {pool_id: PoolState(capacity=capacity[pool_id]) for pool_id in ids}
        cursor.execute(
            f"SELECT t.pool_id, t.status, COUNT(*), COUNT(d.predicted_seconds), SUM(d.predicted_seconds) "
            f"FROM {task} t LEFT OUTER JOIN {decision} d ON d.task_id = t.id "
            f"WHERE t.pool_id IN ({among}) AND t.status IN (%s, %s) GROUP BY t.pool_id, t.status",
            [*ids, Task.Status.QUEUED.value, Task.Status.RUNNING.value],
        )
        for pool_id, status, n, known, seconds in cursor.fetchall():
            state = states[pool_id]
            running = status == Task.Status.RUNNING
            if running:
                state.running += n
            else:
                state.queued += n
            state.work += (RUNNING_REMAINING if running else 1.0) * (seconds or 0.0)
            state.unknown += n - known
        cursor.execute(
            f'SELECT pool_id, task_type, "count", success_rate, p50_seconds, p95_seconds '
            f"FROM {PerformanceProfile._meta.db_table} WHERE pool_id IN ({among})",
            ids,
        )
        for (pool_id, task_type), record in records_of(cursor.fetchall()).items():
            states[pool_id].records[task_type] = record
        if model:
            for pool_id, factor in _corrections(cursor, pools, model=model).items():
                states[pool_id].correction = factor
    return states


def duration_corrections(pools: Sequence[AgentPool], *, model: str) -> dict[int, float]:
    """Pool id -> median(actual / model-predicted p50) of its last closed decisions under `model`."""
    if not pools:
        return {}
    with connection.cursor() as cursor:
        return _corrections(cursor, pools, model=model)


# (decision id, closed at) -> its actual / model-predicted p50 (None: no usable prediction). A closed
# decision never changes, so each one's candidates (JSON) are decoded once per process, not at every
# read; the closing time in the key keeps an id reused by a rolled-back test from matching. Both are
# read as text: the drivers' datetime and JSON decoding of every row was most of this read's CPU.
_ratios: dict[tuple[int, Any], Any] = {}
_UNREAD = object()
MAX_RATIOS = 4096


def _corrections(cursor: Any, pools: Sequence[AgentPool], *, model: str) -> dict[int, float]:
    """duration_corrections in one statement: each pool's newest CORRECTION_ROWS closed decisions
    (the (chosen_pool, closed_at) index serves each part), all pools together."""
    import statistics

    prefix = f"{model},"
    one = (
        f"SELECT * FROM (SELECT id, CAST(closed_at AS TEXT), chosen_pool_id, CAST(candidates AS TEXT), duration "
        f"FROM {RoutingDecision._meta.db_table} WHERE chosen_pool_id = %s "
        f"AND closed_at IS NOT NULL AND duration IS NOT NULL "
        f"AND SUBSTR(model_version, 1, {len(prefix)}) = %s ORDER BY closed_at DESC LIMIT {CORRECTION_ROWS}) part{{}}"
    )
    cursor.execute(
        " UNION ALL ".join(one.format(i) for i in range(len(pools))),
        [value for pool in pools for value in (pool.id, prefix)],
    )
    names = {pool.id: pool.name for pool in pools}
    if len(_ratios) > MAX_RATIOS:
        _ratios.clear()
    ratios: dict[int, list[float]] = {}
    for decision_id, closed_at, pool_id, candidates, duration in cursor.fetchall():
        key = (decision_id, closed_at)
        ratio = _ratios.get(key, _UNREAD)  # one lookup: the refresher's thread may clear it meanwhile
        if ratio is _UNREAD:
            ratio = _ratios[key] = _ratio(candidates, duration, pool=names[pool_id])
        if ratio is not None:
            ratios.setdefault(pool_id, []).append(ratio)
    low, high = CORRECTION_BOUNDS
    return {
        pool_id: min(high, max(low, statistics.median(values)))
        for pool_id, values in ratios.items()
        if len(values) >= CORRECTION_MIN_ROWS
    }


def _ratio(candidates: Any, duration: float, *, pool: str) -> float | None:
    """Actual / model-predicted p50 of a decision on `pool`, from its stored candidates."""
    if isinstance(candidates, str | bytes):  # SQLite and psycopg hand JSON over as text
        candidates = json.loads(candidates)
    mine = next((c for c in candidates or () if c.get("pool") == pool), None)
    if mine and mine.get("p50_model"):
        return duration / mine["p50_model"]
    return None


def expected_attempts(p: float) -> float:
    return 1.0 / max(p, SUCCESS_FLOOR)


def predict_pools(
    *,
    spec: TaskSpec,
    pools: Sequence[AgentPool],
    models: Active | None = None,
    states: PoolStates | None = None,
    at: datetime | None = None,
) -> list[PoolPrediction]:
    """Predictions for a task on each pool, in the order of `pools`. Raises NoModel.

    Without an active success model the success probability is the pool's record on the type
    (smoothed toward 0.9 for little history), and `success_source` says so.
    """
    import numpy as np

    from ml.forest import apply_duration, apply_duration_success, apply_success, artifact_spec, same_encoding

    models = models or active_models()
    duration = models.models.get("duration")
    if duration is None:
        raise NoModel(models.refused.get("duration") or "no active duration model yet (train one with enough history)")
    success = models.models.get("success")
    pool_states = (states or PoolStates(max_age=0)).get(pools, model=duration.label)
    rows = task_rows(
        pools=[p.name for p in pools],
        task_type=spec.task_type,
        capabilities=spec.capabilities,
        priority=spec.priority,
        complexity=spec.complexity,
        prompt_length=spec.prompt_length,
        source=spec.source,
        loads=[pool_states[p.id].running for p in pools],
        at=at or timezone.now(),
    )
    X = artifact_spec(duration.artifact).encode(rows)
    shared = False
    if success is not None and same_encoding(duration.artifact, success.artifact):
        shared = True  # one encoding, and a boosted success model's trees walked with the quantiles'
        p50_model, p90_model, p_success = apply_duration_success(duration.artifact, success.artifact, X)
    else:
        p50_model, p90_model = apply_duration(duration.artifact, rows, X=X)
    correction = np.array([pool_states[p.id].correction for p in pools])
    p50, p90 = p50_model * correction, p90_model * correction
    records = [pool_states[p.id].records.get(spec.task_type) for p in pools]
    if success is not None:
        if not shared:
            p_success = apply_success(success.artifact, rows)
        source, version = "model", f"{duration.label}, {success.label}"
    else:
        # the record's rate, pulled toward 0.9 by two pseudo-attempts so one failure is not "never"
        p_success = np.array([((r.success_rate * r.count) if r else 0.0) + 1.8 for r in records]) / np.array(
            [(r.count if r else 0) + 2 for r in records]
        )
        reason = models.refused.get("success")
        source = "profile"
        version = f"{duration.label}, success from profiles" + (" (success model refused)" if reason else "")
    fill = float(np.median(p50)) if len(p50) else 0.0
    out = []
    for i, pool in enumerate(pools):
        state = pool_states[pool.id]
        record = records[i]
        wait = state.wait(fill=fill)
        attempts = expected_attempts(float(p_success[i]))
        out.append(
            PoolPrediction(
                pool=pool.name,
                pool_id=pool.id,
                p50=float(p50[i]),
                p90=float(p90[i]),
                success=float(p_success[i]),
                attempts=attempts,
                p50_model=float(p50_model[i]),
                correction=float(correction[i]),
                wait=wait,
                expected=wait + float(p50[i]) * attempts,
                history=record.count if record else 0,
                success_source=source,
                model_version=version,
            )
        )
    return out


# --- ETAs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Eta:
    """When a queued or running task is expected to finish: `seconds` from now at p50, `p90_seconds` at p90."""

    task_id: str
    status: str
    seconds: float
    p90_seconds: float
    at: datetime
    wait: float
    model_version: str


def duration_model(models: Active) -> Loaded:
    """The active duration model, or NoModel saying why there is none."""
    duration = models.models.get("duration")
    if duration is None:
        raise NoModel(models.refused.get("duration") or "no active duration model yet (train one with enough history)")
    return duration


def task_etas(tasks: Iterable[Task], *, now: datetime | None = None, models: Active | None = None) -> dict[str, Eta]:
    """ETAs of the queued and running tasks among `tasks` (others are left out). Raises NoModel.

    A running task's ETA is its predicted duration minus the time it has run (the p90 when it has
    already run past its p50). A queued task waits for the work ahead of it in its pool: running
    tasks, and queued ones of higher priority or queued earlier.
    """
    from ml.forest import apply_duration

    duration = duration_model(models or active_models())
    now = now or timezone.now()
    tasks = [t for t in tasks if t.status in (Task.Status.QUEUED, Task.Status.RUNNING) and t.pool_id]
    if not tasks:
        return {}
    pools = {t.routed_pool.id: t.routed_pool for t in tasks}
    loads = dict(
        Task.objects.filter(pool_id__in=list(pools), status=Task.Status.RUNNING)
        .values_list("pool_id")
        .annotate(n=Count("id"))
    )
    rows = _rows_of(tasks, loads=loads, at=now)
    p50, p90 = apply_duration(duration.artifact, rows)
    corrections = duration_corrections(list(pools.values()), model=duration.label)
    factor = [corrections.get(t.routed_pool.id, 1.0) for t in tasks]
    p50, p90 = p50 * factor, p90 * factor
    capacity = pool_capacity(list(pools.values()))
    out = {}
    for i, task in enumerate(tasks):
        if task.status == Task.Status.RUNNING:
            elapsed = (now - (task.started_at or now)).total_seconds()
            left50 = max(0.0, p50[i] - elapsed) if elapsed <= p50[i] else max(0.0, p90[i] - elapsed)
            left90 = max(left50, p90[i] - elapsed)
            wait = 0.0
        else:
            wait = _wait_ahead(task, capacity=capacity[task.routed_pool.id], fill=float(p50[i]))
            left50, left90 = wait + p50[i], wait + p90[i]
        out[str(task.id)] = Eta(
            task_id=str(task.id),
            status=task.status,
            seconds=float(left50),
            p90_seconds=float(left90),
            at=now + timedelta(seconds=float(left50)),
            wait=wait,
            model_version=duration.label,
        )
    return out


def _rows_of(tasks: Sequence[Task], *, loads: Mapping[int, int], at: datetime) -> dict[str, list]:
    columns: dict[str, list] = {}
    for task in tasks:
        one = task_rows(
            pools=[task.routed_pool.name],
            task_type=task.task_type,
            capabilities=task.capabilities or [],
            priority=task.priority,
            complexity=task.complexity,
            prompt_length=len(task.prompt or ""),
            source=task.source,
            loads=[loads.get(task.routed_pool.id, 0)],
            at=at,
            agent=task.agent.name if task.status == Task.Status.RUNNING and task.agent is not None else "",
        )
        for name, values in one.items():
            columns.setdefault(name, []).extend(values)
    return columns


def _wait_ahead(task: Task, *, capacity: int, fill: float) -> float:
    """Seconds of work ahead of a queued task in its pool, over the pool's capacity."""
    rank = BROKER_PRIORITY[Priority(task.priority)]
    before = Q(status=Task.Status.RUNNING) | Q(
        status=Task.Status.QUEUED,
        priority__in=[p for p, r in BROKER_PRIORITY.items() if r < rank],
    )
    if task.queued_at is not None:
        before |= Q(status=Task.Status.QUEUED, priority=task.priority, queued_at__lt=task.queued_at)
    ahead = (
        Task.objects.filter(before, pool_id=task.pool_id)
        .exclude(id=task.id)
        .values("status")
        .annotate(n=Count("id"), known=Count("decision__predicted_seconds"), seconds=Sum("decision__predicted_seconds"))
    )
    count, work = 0, 0.0
    for row in ahead:
        share = RUNNING_REMAINING if row["status"] == Task.Status.RUNNING else 1.0
        count += row["n"]
        work += share * ((row["seconds"] or 0.0) + (row["n"] - row["known"]) * fill)
    if count < capacity:
        return 0.0
    return work / capacity
