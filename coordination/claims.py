"""The claim's one conditional UPDATE, returning the claimed task and its pool in the same statement.

`UPDATE … WHERE id = … AND status = 'queued' … RETURNING` (PostgreSQL, SQLite 3.35+) hands back
the row as the UPDATE wrote it, so the claim needs no second read of the task; the pool's columns
come back as scalar subqueries of the same statement, read fresh at every claim (an operator's
change to a pool's runner counts from the next task on).

With `budget_free`, the UPDATE also requires that no daily budget can hold the task: no hold
reason yet, and a command task, or neither its pool nor its team has a budget
(coordination.budgets). A task that fails only that condition is still queued, and the caller
asks the budgets before it claims it with `budget_free=False`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Field, Model

from agents.models import AgentPool
from coordination.models import Task, Team

_sql: dict[bool, str] = {}


def _columns(model: type[Model]) -> list[Field]:
    return list(model._meta.concrete_fields)


def _claim_sql(budget_free: bool) -> str:
    if budget_free in _sql:
        return _sql[budget_free]

    def q(name: str | None) -> str:
        return connection.ops.quote_name(str(name))

    task, pool, team = q(Task._meta.db_table), q(AgentPool._meta.db_table), q(Team._meta.db_table)
    returned = [f"{task}.{q(f.column)}" for f in _columns(Task)] + [
        f"(SELECT p.{q(f.column)} FROM {pool} p WHERE p.{q('id')} = {task}.{q('pool_id')})" for f in _columns(AgentPool)
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


def _names(model: type[Model]) -> list[str]:
    return [f.attname for f in _columns(model)]


def _converted(model: type[Model], values: list[Any]) -> list[Any]:
    """What the ORM's compiler does to a row it reads: each field's database converters."""
    out = []
    table = model._meta.db_table
    for field, value in zip(_columns(model), values, strict=True):
        col = field.get_col(table)
        for converter in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
            value = converter(value, col, connection)
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
    split = len(_columns(Task))
    task = Task.from_db(connection.alias, _names(Task), _converted(Task, list(row[:split])))
    if task.pool_id is not None:
        task.pool = AgentPool.from_db(connection.alias, _names(AgentPool), _converted(AgentPool, list(row[split:])))
    return task
