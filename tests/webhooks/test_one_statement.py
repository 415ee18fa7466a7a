"""GitHub deliveries outside a transaction on PostgreSQL: a new one stores its task, decision,
event and accepted delivery row in one INSERT statement; a repeat only reads (no INSERT, no
second task)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import AgentPool
from coordination.models import Event, RoutingDecision, Task, Team
from external_api.models import WebhookDelivery
from external_api.services import webhook_source_create
from tests.webhooks.conftest import GITHUB_SECRET, comment_event, post_github

# PostgreSQL's alone (WITH … INSERT); SQLite takes the general path, which its own tests cover.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgresql]


@pytest.fixture
def github(live_pools):
    return webhook_source_create(
        kind="github", slug="github", team=Team.objects.create(name="acme"), secret=GITHUB_SECRET
    )


def inserts(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"].upper()]


def test_new_delivery_is_one_insert_statement_and_a_repeat_needs_no_transaction(client, github):
    post_github(client, comment_event("/hive warm up", comment_id=1), event="issue_comment", delivery="warm")
    body = json.dumps(comment_event("/hive fix the login bug", comment_id=2)).encode()

    with CaptureQueriesContext(connection) as new_queries:
        new = post_github(client, body, event="issue_comment", delivery="d-1")
    with CaptureQueriesContext(connection) as repeat_queries:
        repeat = post_github(client, body, event="issue_comment", delivery="d-1")

    assert new.status_code == 201, new.json()
    assert repeat.status_code == 200 and repeat.json()["code"] == "duplicate"
    task = Task.objects.get(id=new.json()["task"])
    assert repeat.json()["task"] == str(task.id)
    assert len(inserts(new_queries)) == 1, inserts(new_queries)
    repeated = [q["sql"] for q in repeat_queries.captured_queries]
    assert not [sql for sql in repeated if "SAVEPOINT" in sql or "FOR UPDATE" in sql], repeated
    assert Task.objects.count() == 2  # the warm-up's and this one's
    delivery = WebhookDelivery.objects.get(source=github, delivery_id="d-1")
    assert (delivery.outcome, delivery.task_id) == ("accepted", task.id)
    assert delivery.detail == f"task {task.id} on pool {task.pool.name}"
    assert RoutingDecision.objects.filter(task=task).count() == 1
    assert Event.objects.filter(task=task, type="task.queued").count() == 1
    assert Task.objects.filter(idempotency_key="github:comment:2").count() == 1


def test_new_delivery_id_for_work_already_submitted_is_a_duplicate_without_a_second_task(client, github):
    body = json.dumps(comment_event("/hive fix the login bug", comment_id=3)).encode()
    first = post_github(client, body, event="issue_comment", delivery="d-a")

    other = post_github(client, body, event="issue_comment", delivery="d-b")  # same comment, new delivery id

    assert first.status_code == 201
    assert other.status_code == 200 and other.json()["task"] == first.json()["task"]
    assert Task.objects.filter(idempotency_key="github:comment:3").count() == 1
    assert WebhookDelivery.objects.get(delivery_id="d-b").outcome == "duplicate"


def test_new_delivery_after_a_pool_change_is_routed_on_the_new_pool_rows_in_one_statement(client, github):
    warm = post_github(client, comment_event("/hive warm up", comment_id=4), event="issue_comment", delivery="w")
    pool = Task.objects.get(id=warm.json()["task"]).pool
    AgentPool.objects.filter(id=pool.id).update(max_attempts=7)  # another writer: the routing token changes

    with CaptureQueriesContext(connection) as queries:
        new = post_github(client, comment_event("/hive after", comment_id=5), event="issue_comment", delivery="n")

    assert new.status_code == 201, new.json()
    assert Task.objects.get(id=new.json()["task"]).attempt_budget == 7
    statements = [q["sql"] for q in queries.captured_queries]
    assert not [sql for sql in statements if "SAVEPOINT" in sql], statements  # not the general path
    assert WebhookDelivery.objects.get(delivery_id="n").outcome == "accepted"
