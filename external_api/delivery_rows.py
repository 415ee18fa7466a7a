"""The row of a webhook delivery seen before, with its task and the task's pool, in one statement
compiled once per process.

A repeated delivery (GitHub redelivers on a timeout, a sender retries) is answered from its first
row. Through the ORM, building and compiling that `select_related("task__pool")` read cost more
CPU than the rest of the request. Here the SQL is written once from the models' columns, and
each row goes through the same database converters and `from_db` the ORM would use
(coordination.claims.converted), so the objects are those the ORM would return.
"""

from __future__ import annotations

from typing import Any

from agents.models import AgentPool
from coordination.claims import converted, field_names, task_with_pool
from coordination.models import Task
from coordination.rows import current, hot_cursor
from external_api.models import WebhookDelivery

_sql: dict[str, str] = {}  # database vendor -> the statement


def _statement(db: Any) -> str:
    sql = _sql.get(db.vendor)
    if sql is not None:
        return sql
    q = db.ops.quote_name
    selected = [
        f"{alias}.{q(str(f.column))}"
        for alias, model in (("d", WebhookDelivery), ("t", Task), ("p", AgentPool))
        for f in model._meta.concrete_fields
    ]
    sql = (
        f"SELECT {', '.join(selected)} FROM {q(WebhookDelivery._meta.db_table)} d "
        f"LEFT JOIN {q(Task._meta.db_table)} t ON t.{q('id')} = d.{q('task_id')} "
        f"LEFT JOIN {q(AgentPool._meta.db_table)} p ON p.{q('id')} = t.{q('pool_id')} "
        f"WHERE d.{q('source_id')} = %s AND d.{q('delivery_id')} = %s"
    )
    _sql[db.vendor] = sql
    return sql


def delivery_seen(*, source_id: int, delivery_id: str) -> WebhookDelivery | None:
    """The delivery `delivery_id` of this source as stored, its `task` (and the task's `pool`)
    attached, or None when it was never stored. One row at most: (source, delivery_id) is unique."""
    db = current()
    with hot_cursor(db) as cursor:
        cursor.execute(_statement(db), [source_id, delivery_id])
        row = cursor.fetchone()
    if row is None:
        return None
    names = field_names(WebhookDelivery)
    delivery = WebhookDelivery.from_db(db.alias, names, converted(WebhookDelivery, list(row[: len(names)])))
    delivery.task = task_with_pool(row[len(names) :]) if delivery.task_id is not None else None
    return delivery
