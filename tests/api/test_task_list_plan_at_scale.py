"""The filtered task list at scale: with a long history, PostgreSQL must walk the (team, status,
created_at) index and stop at the page, not read and sort every queued task of the pool.

Filtering by pool *name* through the join hid from the planner how many tasks the name selects;
with two teams it read and sorted all of a pool's queued tasks (20 ms at a million rows, bench
scenario 3). external_api.api.task_list compares the pool's id instead (task_list.BY_NAME).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import AgentPool
from coordination.models import Task

pytestmark = [pytest.mark.django_db, pytest.mark.postgresql]

HISTORY = 60_000


def _history(template: Task, other_pool: AgentPool, rows: int) -> None:
    """`rows` copies of the template task (its team): half on each pool, 2% queued, a minute apart."""
    columns = [f.column for f in Task._meta.concrete_fields]
    made = {
        "id": "gen_random_uuid()",
        "status": "CASE WHEN g %% 50 = 0 THEN 'queued' ELSE 'succeeded' END",
        "pool_id": f"CASE WHEN g %% 2 = 0 THEN t.pool_id ELSE {int(other_pool.id)} END",
        "created_at": "t.created_at - g * interval '1 minute'",
    }
    select = ", ".join(made.get(c, f't."{c}"') for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO coordination_task ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)}) "
            f"SELECT {select} FROM coordination_task t, generate_series(1, %s) g WHERE t.id = %s",
            [rows, template.id],
        )
        cursor.execute("ANALYZE coordination_task")


def _plan(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        (plan,) = cursor.fetchone()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _nodes(plan: dict) -> list[dict]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


def test_a_pool_filtered_page_reads_about_a_page_of_tasks_not_every_queued_one(personas, pools):
    writer = personas["writer"].client
    outsider = personas["outsider"].client  # a second team's tasks, as in any hive with two
    for client in (writer, outsider):
        response = client.post("/api/v1/tasks/", {"capabilities": ["python"], "prompt": "history"}, format="json")
        assert response.status_code == 201, response.content
    template = Task.objects.get(team=personas["writer"].team)
    other = AgentPool.objects.exclude(id=template.pool_id).first()
    _history(template, other, HISTORY)
    pool = template.pool.name

    with CaptureQueriesContext(connection) as queries:
        response = writer.get(f"/api/v1/tasks/?status=queued&pool={pool}&limit=50")

    assert response.status_code == 200
    page = response.json()["results"]
    assert len(page) == 50 and {task["pool"] for task in page} == {pool}
    assert all(task["status"] == "queued" for task in page)
    (sql,) = [q["sql"] for q in queries.captured_queries if 'FROM "coordination_task"' in q["sql"]]
    nodes = _nodes(_plan(sql))
    read = sum(n["Actual Rows"] * n["Actual Loops"] for n in nodes if n.get("Relation Name") == "coordination_task")
    assert not any(n["Node Type"] == "Sort" for n in nodes), [n["Node Type"] for n in nodes]
    assert read <= 200, f"read {read} task rows for a page of 50 ({HISTORY // 100} queued on the pool)"
