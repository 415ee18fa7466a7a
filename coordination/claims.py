"""The claim's one conditional UPDATE, returning the claimed task and its pool in the same statement.

`UPDATE … WHERE id = … AND status = 'queued' … RETURNING` (PostgreSQL, SQLite 3.35+) hands back
the row as the UPDATE wrote it, so the claim needs no second read of the task; the pool's columns
come back as scalar subqueries of the same statement, read fresh at every claim (an operator's
change to a pool's runner counts from the next task on).

With `budget_free`, the UPDATE also requires that no daily budget can hold the task: no hold
reason yet, and a command task, or neither its pool nor its team has a budget
(coordination.budgets). A task that fails only that condition is still queued, and the caller
asks the budgets before it claims it with `budget_free=False`.

On PostgreSQL, `claim_running` also writes the attempt's row and its `task.running` event, and
moves a session task's step to running, in the same statement: INSERTs and an UPDATE in a WITH of
the claim's UPDATE, each over the claim's RETURNING, so they write only when the conditional UPDATE
claimed the task. One statement, atomic by itself, so the caller needs no transaction around it:
one round trip where BEGIN, three statements and COMMIT were five (the claim is still the one
conditional UPDATE). SQLite has no data-modifying WITH: there the caller writes the rest after
`claim_row`, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Field, Model

from agents.models import Agent, AgentPool
from coordination.models import Event, SessionStep, Source, Task, TaskAttempt, Team
from coordination.rows import current, hot_cursor, mark_saved, param, saved_values, saves_silently

_sql: dict[bool, str] = {}
_with_rows: dict[bool, tuple[str, list[Field], list[Field]]] = {}
# (model, alias) -> each concrete column and its database converters, looked up once (they depend
# on the field and the backend only): looking them up for every column of every claim cost more
# than the rest of reading the row
_converters: dict[tuple[type[Model], str], list[tuple[Any, list[Callable[..., Any]]]]] = {}
RUNNING_EVENT = "task.running"


def _columns(model: type[Model]) -> list[Field]:
    return list(model._meta.concrete_fields)


def q(name: str | None) -> str:
    return connection.ops.quote_name(str(name))


def _claim_sql(budget_free: bool) -> str:
    if budget_free in _sql:
        return _sql[budget_free]
    task, pool, team = q(Task._meta.db_table), q(AgentPool._meta.db_table), q(Team._meta.db_table)
    returned = [f"{task}.{q(f.column)}" for f in _columns(Task)] + [
        f"(SELECT p.{q(f.column)} FROM {pool} p WHERE p.{q('id')} = {task}.{q('pool_id')}) AS {q(f'pool__{f.column}')}"
        for f in _columns(AgentPool)
    ]
    condition = f"{q('id')} = %s AND {q('status')} = %s"
    if budget_free:
        condition += (
            f" AND {q('hold_reason')} = '' AND ({q('command')} IS NOT NULL OR ("
            f"NOT EXISTS (SELECT 1 FROM {pool} p WHERE p.{q('id')} = {task}.{q('pool_id')}"
            f" AND p.{q('budget_usd_per_day')} IS NOT NULL) AND "
            f"NOT EXISTS (SELECT 1 FROM {team} m WHERE m.{q('id')} = {task}.{q('team_id')}"
            f" AND m.{q('budget_usd_per_day')} IS NOT NULL)))"
        )
    sql = (
        f"UPDATE {task} SET {q('status')} = %s, {q('agent_id')} = %s, {q('attempts')} = {q('attempts')} + 1, "
        f"{q('started_at')} = %s, {q('updated_at')} = %s WHERE {condition} RETURNING {', '.join(returned)}"
    )
    _sql[budget_free] = sql
    return sql


def field_names(model: type[Model]) -> list[str]:
    return [f.attname for f in _columns(model)]


def converted(model: type[Model], values: list[Any]) -> list[Any]:
    """What the ORM's compiler does to a row it reads: each field's database converters."""
    db = current()
    key = (model, db.alias)
    converters = _converters.get(key)
    if converters is None:
        table = model._meta.db_table
        converters = []
        for field in _columns(model):
            col = field.get_col(table)
            converters.append((col, db.ops.get_db_converters(col) + col.get_db_converters(db)))
        _converters[key] = converters
    out = []
    for (col, functions), value in zip(converters, values, strict=True):
        for converter in functions:
            value = converter(value, col, db)
        out.append(value)
    return out


def claim_row(*, task_id: str, agent_id: int, now: datetime, budget_free: bool) -> Task | None:
    """Move the task `queued → running` for this agent (attempts + 1). The claimed Task with its
    pool attached, or None when no row matched."""
    pk = Task._meta.pk
    assert pk is not None
    stamp = Task._meta.get_field("started_at")
    when = stamp.get_db_prep_value(now, connection)
    params = [Task.Status.RUNNING, agent_id, when, when, pk.get_db_prep_value(pk.to_python(task_id), connection)]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(budget_free), [*params, Task.Status.QUEUED])
        row = cursor.fetchone()
    if row is None:
        return None
    return task_with_pool(row)


def task_with_pool(row: tuple | list) -> Task:
    """The Task read from `row` (its concrete columns, then its pool's), the pool attached, as
    the ORM's select_related("pool") would give them."""
    alias = current().alias
    split = len(_columns(Task))
    task = Task.from_db(alias, field_names(Task), converted(Task, list(row[:split])))
    if task.pool_id is not None:
        pool_end = split + len(_columns(AgentPool))
        task.pool = AgentPool.from_db(alias, field_names(AgentPool), converted(AgentPool, list(row[split:pool_end])))
    return task


def writes_rows_with_claim() -> bool:
    """Whether `claim_running` can write the attempt and its event in the claim's statement: on
    PostgreSQL, and only while no save signal listens to either model (a WITH sends none)."""
    return connection.vendor == "postgresql" and saves_silently(TaskAttempt, Event)


def _insert_from_claimed(model: type[Model], computed: dict[str, str]) -> tuple[str, list[Field]]:
    """`INSERT INTO model (…) SELECT …, FROM claimed c RETURNING id`: the columns in `computed` are
    SQL over the claimed row (`c`), every other one a parameter (the fields returned, in order)."""
    fields = [f for f in model._meta.local_concrete_fields if f is not model._meta.auto_field and not f.generated]
    values = [computed.get(str(f.column)) or param(f, connection) for f in fields]
    sql = (
        f"INSERT INTO {q(model._meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
        f"SELECT {', '.join(values)} FROM claimed c RETURNING {q('id')}"
    )
    return sql, [f for f in fields if f.column not in computed]


def _with_rows_sql(budget_free: bool) -> tuple[str, list[Field], list[Field]]:
    cached = _with_rows.get(budget_free)
    if cached is not None:
        return cached
    attempt_sql, attempt_params = _insert_from_claimed(
        TaskAttempt, {"task_id": f"c.{q('id')}", "number": f"c.{q('attempts')}"}
    )
    event_sql, event_params = _insert_from_claimed(
        Event,
        {
            "task_id": f"c.{q('id')}",
            "pool_id": f"c.{q('pool_id')}",
            "team_id": f"c.{q('team_id')}",
            "payload": f"jsonb_build_object('attempt', c.{q('attempts')})",
        },
    )
    step = (
        f"UPDATE {q(SessionStep._meta.db_table)} SET {q('status')} = '{SessionStep.Status.RUNNING.value}' "
        f"WHERE {q('task_id')} IN (SELECT {q('id')} FROM claimed WHERE {q('source')} = '{Source.SESSION.value}') "
        f"AND {q('status')} = '{SessionStep.Status.QUEUED.value}'"
    )
    sql = (
        f"WITH claimed AS ({_claim_sql(budget_free)}), attempt AS ({attempt_sql}), event AS ({event_sql}), "
        f"step AS ({step}) "
        f"SELECT claimed.*, (SELECT {q('id')} FROM attempt), (SELECT {q('id')} FROM event) FROM claimed"
    )
    _with_rows[budget_free] = (sql, attempt_params, event_params)
    return _with_rows[budget_free]


def claim_running(
    *, task_id: str, agent: Agent, now: datetime, budget_free: bool, host: str, pid: int
) -> tuple[Task, TaskAttempt, Event] | None:
    """`claim_row`, and in the same statement the new attempt's row, the `task.running` event and a
    session task's step moved from queued to running (PostgreSQL; see `writes_rows_with_claim`). The claimed task with its pool and agent, the
    attempt and the event as saved rows, or None when no row matched (and nothing was written)."""
    db = current()
    pk = Task._meta.pk
    assert pk is not None
    stamp = Task._meta.get_field("started_at")
    when = stamp.get_db_prep_value(now, db)
    claim = [Task.Status.RUNNING, agent.id, when, when, pk.get_db_prep_value(pk.to_python(task_id), db)]
    attempt = TaskAttempt(agent=agent, host=host, pid=pid, started_at=now, heartbeat_at=now)
    event = Event(type=RUNNING_EVENT, agent=agent, created_at=now)
    sql, attempt_fields, event_fields = _with_rows_sql(budget_free)
    params = [
        *claim,
        Task.Status.QUEUED,
        *saved_values(attempt_fields, attempt, db),
        *saved_values(event_fields, event, db),
    ]
    with hot_cursor(db) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    task = task_with_pool(row)
    task.agent = agent
    attempt.id, event.id = row[-2], row[-1]
    attempt.task, attempt.number = task, task.attempts
    event.task, event.pool, event.team_id, event.payload = task, task.pool, task.team_id, {"attempt": task.attempts}
    for saved in (attempt, event):
        mark_saved(saved, db.alias)
    return task, attempt, event
