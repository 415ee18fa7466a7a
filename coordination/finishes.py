"""A succeeded attempt's end in one statement (PostgreSQL): the attempt, the task, its event and
its routing decision.

`services.attempt_finish` closes a succeeded attempt with four writes: the attempt (conditional
on its outcome still `running`), the task (conditional on its status and attempt number), the
`task.succeeded` event and the routing decision (conditional on its being open). Here they are the
sub-statements of one `WITH`, each conditional on the one before through its RETURNING: the task
moves only if the attempt was closed, the event and the decision are written only if the task
moved. The same conditions, the same rows, one round trip instead of four.

With a `ProfileFold`, the same statement folds the attempt into its agent's performance profile
(agents.profiles.profile_record, in SQL: an INSERT … ON CONFLICT DO UPDATE, conditional on the
attempt's close, computing the same moving averages, the same window of recent durations and its
quantiles: PostgreSQL's `percentile_cont` is the same linear interpolation as `quantile`). The row
is locked by the upsert itself, so concurrent finishes on one profile still apply one after the
other. Being one statement, it needs no transaction around it.

SQLite has no data-modifying WITH; there, and for every other outcome, `attempt_finish` writes
them one by one in a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.db import connection
from django.db.models import Field

from agents.models import PerformanceProfile
from coordination.metrics import PREDICTION_ERROR
from coordination.models import Event, RoutingDecision, Task, TaskAttempt
from coordination.rows import current, hot_cursor, mark_saved, param, saved_values, saves_silently

_sql: dict[tuple[tuple[str, ...], bool], tuple[str, list[Field]]] = {}
TASK_COLUMNS = ("status", "finished_at", "result", "error", "updated_at")
DECISION_COLUMNS = ("duration", "success", "attempts", "closed_at")


@dataclass
class Closing:
    closed: bool  # the attempt was still running and is now closed
    done: bool  # the task was still running this attempt and is now succeeded


@dataclass(frozen=True)
class ProfileFold:
    """One finished attempt for its (pool, agent, task type) profile, as `profile_record` takes it
    (a success, with a duration that is a duration)."""

    pool_id: int
    agent_id: int
    task_type: str
    seconds: float
    cost_usd: float | None
    learning_rate: float


def folds_finish() -> bool:
    """Whether `close_succeeded` can be used: PostgreSQL, and no save signal listening to the event
    or the profile model (the step-by-step path saves both through the ORM; a WITH sends none)."""
    return connection.vendor == "postgresql" and saves_silently(Event, PerformanceProfile)


def _statement(attempt_columns: tuple[str, ...], with_profile: bool) -> tuple[str, list[Field]]:
    cached = _sql.get((attempt_columns, with_profile))
    if cached is not None:
        return cached
    q = connection.ops.quote_name
    attempt_t, task_t = q(TaskAttempt._meta.db_table), q(Task._meta.db_table)
    event_t, decision_t = q(Event._meta.db_table), q(RoutingDecision._meta.db_table)
    event_fields = [f for f in Event._meta.local_concrete_fields if f is not Event._meta.auto_field]

    def assign(model: Any, names: tuple[str, ...]) -> str:
        return ", ".join(f"{q(model._meta.get_field(name).column)} = %s" for name in names)

    sql = (
        f"WITH a AS (UPDATE {attempt_t} SET {assign(TaskAttempt, attempt_columns)} "
        f"WHERE {q('id')} = %s AND {q('outcome')} = %s RETURNING {q('id')}), "
        f"t AS (UPDATE {task_t} SET {assign(Task, TASK_COLUMNS)} "
        f"WHERE {q('id')} = %s AND {q('status')} = %s AND {q('attempts')} = %s AND EXISTS (SELECT 1 FROM a) "
        f"RETURNING {q('id')}), "
        f"e AS (INSERT INTO {event_t} ({', '.join(q(str(f.column)) for f in event_fields)}) "
        f"SELECT {', '.join(param(f, connection) for f in event_fields)} FROM t RETURNING {q('id')}), "
        f"d AS (UPDATE {decision_t} SET {assign(RoutingDecision, DECISION_COLUMNS)} "
        f"WHERE {q('task_id')} IN (SELECT {q('id')} FROM t) AND {q('closed_at')} IS NULL "
        f"RETURNING {q('predicted_seconds')})"
    )
    select = (
        f"SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM t), (SELECT {q('id')} FROM e), "
        f"(SELECT count(*) FROM d), (SELECT {q('predicted_seconds')} FROM d)"
    )
    if with_profile:
        sql += f", p AS ({_profile_upsert()})"
        select += ", (SELECT count(*) FROM p)"
    _sql[(attempt_columns, with_profile)] = (sql + " " + select, event_fields)
    return _sql[(attempt_columns, with_profile)]


def _profile_upsert() -> str:
    """`agents.profiles.profile_record` of a success, as SQL (parameters: pool, agent, task type,
    seconds, the rounded seconds three times, cost, the window `[rounded]`, now, learning rate)."""
    q = connection.ops.quote_name
    meta = PerformanceProfile._meta
    table = q(meta.db_table)
    window = PerformanceProfile.RECENT_WINDOW
    recent = (  # the window with the new duration, oldest first, at most RECENT_WINDOW long
        f"SELECT v, o FROM jsonb_array_elements(p.{q('recent')} || EXCLUDED.{q('recent')}) WITH ORDINALITY x(v, o) "
        f"ORDER BY o DESC LIMIT {window}"
    )

    def quantile(fraction: float) -> str:
        return f"(SELECT percentile_cont({fraction}) WITHIN GROUP (ORDER BY (v #>> '{{}}')::float8) FROM ({recent}) w)"

    alpha = f"GREATEST(%s::float8, 1.0::float8 / (p.{q('count')} + 1))"

    def ema(column: str) -> str:  # _ema: the new value alone when there is no previous one
        c = q(column)
        return f"CASE WHEN p.{c} IS NULL THEN EXCLUDED.{c} ELSE p.{c} + {alpha} * (EXCLUDED.{c} - p.{c}) END"

    columns = [
        "pool_id",
        "agent_id",
        "task_type",
        "count",
        "successes",
        "success_rate",
        "mean_seconds",
        "p50_seconds",
        "p95_seconds",
        "cost_usd",
        "recent",
        "updated_at",
    ]
    cost = q("cost_usd")
    values = {name: param(cast(Field, meta.get_field(name)), connection) for name in columns}
    values.update(count="1", successes="1", success_rate="1.0")
    return (
        f"INSERT INTO {table} AS p ({', '.join(q(c) for c in columns)}) "
        f"SELECT {', '.join(values[c] for c in columns)} WHERE EXISTS (SELECT 1 FROM a) "
        f"ON CONFLICT ({q('pool_id')}, {q('agent_id')}, {q('task_type')}) DO UPDATE SET "
        f"{q('count')} = p.{q('count')} + 1, {q('successes')} = p.{q('successes')} + 1, "
        # the success rate of a profile counted once before is the new value alone (profile_record)
        f"{q('success_rate')} = CASE WHEN p.{q('count')} < 1 THEN EXCLUDED.{q('success_rate')} ELSE "
        f"p.{q('success_rate')} + {alpha} * (EXCLUDED.{q('success_rate')} - p.{q('success_rate')}) END, "
        f"{q('mean_seconds')} = {ema('mean_seconds')}, "
        f"{q('recent')} = (SELECT COALESCE(jsonb_agg(v ORDER BY o), '[]'::jsonb) FROM ({recent}) w), "
        f"{q('p50_seconds')} = {quantile(0.5)}, {q('p95_seconds')} = {quantile(0.95)}, "
        f"{cost} = CASE WHEN EXCLUDED.{cost} IS NULL THEN p.{cost} ELSE {ema('cost_usd')} END, "
        f"{q('updated_at')} = EXCLUDED.{q('updated_at')} RETURNING p.{q('id')}"
    )


def _profile_params(fold: ProfileFold, now: datetime, db: Any) -> list[Any]:
    rounded = round(fold.seconds, 3)  # what profile_record keeps in its window
    recent = PerformanceProfile._meta.get_field("recent").get_db_prep_save([rounded], db)
    updated = PerformanceProfile._meta.get_field("updated_at").get_db_prep_save(now, db)
    head = [fold.pool_id, fold.agent_id, fold.task_type, fold.seconds, rounded, rounded, fold.cost_usd, recent, updated]
    # the learning rate, once for each use of alpha: the success rate, the mean, the cost
    return head + [fold.learning_rate] * 3


def _prep(model: Any, name: str, value: Any, db: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, db)


def close_succeeded(
    *,
    attempt: TaskAttempt,
    ended: dict[str, Any],
    result: dict | None,
    now: datetime,
    event: Event,
    profile: ProfileFold | None = None,
) -> Closing:
    """Close `attempt` with `ended` (the attempt's columns), move its task to succeeded with
    `result`, write `event` (unsaved; its id is set when written) and close the routing decision,
    in one statement. Each step only if the one before it changed its row. With `profile`, the
    attempt is folded into that performance profile too (only if the attempt was closed)."""
    db = current()
    columns = tuple(ended)
    sql, event_fields = _statement(columns, profile is not None)
    task = attempt.task
    duration = (now - attempt.started_at).total_seconds()
    params: list[Any] = [_prep(TaskAttempt, name, value, db) for name, value in ended.items()]
    params += [attempt.id, TaskAttempt.Outcome.RUNNING]
    task_values = (Task.Status.SUCCEEDED, now, result, "", now)
    params += [_prep(Task, name, value, db) for name, value in zip(TASK_COLUMNS, task_values, strict=True)]
    params += [task.id, Task.Status.RUNNING, attempt.number]
    params += saved_values(event_fields, event, db)
    decision_values = (duration, True, task.attempts, now)
    params += [
        _prep(RoutingDecision, name, value, db) for name, value in zip(DECISION_COLUMNS, decision_values, strict=True)
    ]
    if profile is not None:
        params += _profile_params(profile, now, db)
    with hot_cursor(db) as cursor:
        cursor.execute(sql, params)
        closed, done, event_id, decided, predicted = cursor.fetchone()[:5]
    if event_id is not None:
        event.id = event_id
        mark_saved(event, db.alias)
    if decided and predicted is not None:
        PREDICTION_ERROR.observe(abs(duration - predicted))
    return Closing(closed=bool(closed), done=bool(done))
