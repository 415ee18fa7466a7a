"""A succeeded attempt's end in one statement (PostgreSQL): the attempt, the task, its event and
its routing decision.

`services.attempt_finish` closes a succeeded attempt with four writes: the attempt (conditional
on its outcome still `running`), the task (conditional on its status and attempt number), the
`task.succeeded` event and the routing decision (conditional on its being open). Here they are the
sub-statements of one `WITH`, each conditional on the one before through its RETURNING: the task
moves only if the attempt was closed, the event and the decision are written only if the task
moved. The same conditions, the same rows, one round trip instead of four. With a `profile`
key, the same statement also reads and locks (FOR UPDATE) the agent's performance profile, which
the finish then folds the attempt into (agents.profiles): its read is not a round trip of its own.
SQLite has no data-modifying WITH; there, and for every other outcome, `attempt_finish` writes
them one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Field
from django.db.models.signals import post_save, pre_save

from agents.models import PerformanceProfile
from coordination.claims import converted, field_names
from coordination.metrics import PREDICTION_ERROR
from coordination.models import Event, RoutingDecision, Task, TaskAttempt

_sql: dict[tuple[tuple[str, ...], bool], tuple[str, list[Field]]] = {}
TASK_COLUMNS = ("status", "finished_at", "result", "error", "updated_at")
DECISION_COLUMNS = ("duration", "success", "attempts", "closed_at")


@dataclass
class Closing:
    closed: bool  # the attempt was still running and is now closed
    done: bool  # the task was still running this attempt and is now succeeded
    profile: PerformanceProfile | None = None  # the profile asked for, locked; None if it has no row yet


def folds_finish() -> bool:
    """Whether `close_succeeded` can be used: PostgreSQL, and no save signal listening to the
    event model (a WITH sends none)."""
    return connection.vendor == "postgresql" and not (pre_save.has_listeners(Event) or post_save.has_listeners(Event))


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
        f"e AS (INSERT INTO {event_t} ({', '.join(q(f.column) for f in event_fields)}) "
        f"SELECT {', '.join(['%s'] * len(event_fields))} FROM t RETURNING {q('id')}), "
        f"d AS (UPDATE {decision_t} SET {assign(RoutingDecision, DECISION_COLUMNS)} "
        f"WHERE {q('task_id')} IN (SELECT {q('id')} FROM t) AND {q('closed_at')} IS NULL "
        f"RETURNING {q('predicted_seconds')})"
    )
    select = (
        f"SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM t), (SELECT {q('id')} FROM e), "
        f"(SELECT count(*) FROM d), (SELECT {q('predicted_seconds')} FROM d)"
    )
    if with_profile:
        meta = PerformanceProfile._meta
        columns = ", ".join(q(f.column) for f in meta.concrete_fields)
        sql += (
            f", p AS (SELECT {columns} FROM {q(meta.db_table)} WHERE {q('pool_id')} = %s AND {q('agent_id')} = %s "
            f"AND {q('task_type')} = %s FOR UPDATE)"
        )
        select += ", p.* FROM (SELECT 1) one LEFT JOIN p ON TRUE"
    _sql[(attempt_columns, with_profile)] = (sql + " " + select, event_fields)
    return _sql[(attempt_columns, with_profile)]


def _prep(model: Any, name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def close_succeeded(
    *,
    attempt: TaskAttempt,
    ended: dict[str, Any],
    result: dict | None,
    now: datetime,
    event: Event,
    profile: tuple[int, int, str] | None = None,
) -> Closing:
    """Close `attempt` with `ended` (the attempt's columns), move its task to succeeded with
    `result`, write `event` (unsaved; its id is set when written) and close the routing decision,
    inside the caller's transaction. Each step only if the one before it changed its row. With
    `profile` (pool id, agent id, task type), that profile's row is read and locked as well."""
    columns = tuple(ended)
    sql, event_fields = _statement(columns, profile is not None)
    task = attempt.task
    duration = (now - attempt.started_at).total_seconds()
    params: list[Any] = [_prep(TaskAttempt, name, value) for name, value in ended.items()]
    params += [attempt.id, TaskAttempt.Outcome.RUNNING]
    task_values = (Task.Status.SUCCEEDED, now, result, "", now)
    params += [_prep(Task, name, value) for name, value in zip(TASK_COLUMNS, task_values, strict=True)]
    params += [task.id, Task.Status.RUNNING, attempt.number]
    params += [field.get_db_prep_save(field.pre_save(event, True), connection) for field in event_fields]
    decision_values = (duration, True, task.attempts, now)
    params += [
        _prep(RoutingDecision, name, value) for name, value in zip(DECISION_COLUMNS, decision_values, strict=True)
    ]
    if profile is not None:
        params += list(profile)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    closed, done, event_id, decided, predicted = row[:5]
    locked = None
    if profile is not None and row[5] is not None:  # the profile's id: it has a row
        locked = PerformanceProfile.from_db(
            connection.alias, field_names(PerformanceProfile), converted(PerformanceProfile, list(row[5:]))
        )
    if event_id is not None:
        event.id = event_id
        event._state.adding = False
        event._state.db = connection.alias
    if decided and predicted is not None:
        PREDICTION_ERROR.observe(abs(duration - predicted))
    return Closing(closed=bool(closed), done=bool(done), profile=locked)
