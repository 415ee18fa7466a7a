"""task_submit outside a transaction on PostgreSQL: the task, its routing decision and its event in
one statement (coordination.services.task_submit_in_one_statement), with the guarantees of the
general path: all three rows or none, the message only after they are stored, one task per
idempotency key, routing on the pools the database holds at that moment."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import AgentPool
from coordination import services
from coordination.errors import IdempotencyConflict, NoEligiblePool
from coordination.models import Event, RoutingDecision, Task
from coordination.rows import rows_insert_together
from coordination.services import task_submit

# PostgreSQL's alone (WITH … INSERT); SQLite takes the general path, which its own tests cover.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgresql]


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, bool]]:
    """The tasks whose message was sent, each with whether its row was committed at that moment."""
    calls: list[tuple[str, bool]] = []

    def record(task, *, countdown=0.0):
        calls.append((str(task.id), Task.objects.filter(id=task.id).exists()))
        return True

    monkeypatch.setattr(services, "task_send", record)
    return calls


def submit(**overrides):
    return task_submit(**({"capabilities": ["swift"], "prompt": "build the app"} | overrides))


def test_submit_outside_a_transaction_is_one_statement_storing_task_decision_and_event(live_pools, sent):
    submit()  # makes the default team: a change, so the next submit reads the snapshot again
    submit()

    with CaptureQueriesContext(connection) as queries:
        task = submit(prompt="one trip")

    statements = [q["sql"] for q in queries.captured_queries]
    ours = [sql for sql in statements if not sql.startswith('SELECT 1 AS "a"')]  # not `sent`'s own check
    assert len(ours) == 1 and ours[0].startswith("WITH"), statements
    stored = Task.objects.get(id=task.id)
    assert (stored.prompt, stored.status, stored.pool.name) == ("one trip", Task.Status.QUEUED, "ios")
    decision = RoutingDecision.objects.get(task=task)
    assert decision.chosen_pool_id == stored.pool_id
    event = Event.objects.get(task=task)
    assert event.type == "task.queued" and event.payload["title"] == "one trip"
    assert sent[-1] == (str(task.id), True)  # sent after the rows were committed


def test_submit_one_statement_same_key_returns_the_first_task_and_stores_one(live_pools, sent):
    first = submit(idempotency_key="same")

    again = submit(idempotency_key="same")

    assert again.id == first.id
    assert Task.objects.filter(idempotency_key="same").count() == 1
    assert Event.objects.filter(task=first).count() == 1
    assert RoutingDecision.objects.filter(task=first).count() == 1
    with pytest.raises(IdempotencyConflict):
        submit(idempotency_key="same", prompt="other work")
    assert [task_id for task_id, _ in sent] == [str(first.id)]


def test_submit_one_statement_pool_disabled_by_another_writer_is_not_routed_to(live_pools, sent):
    submit()
    AgentPool.objects.filter(name="ios").update(enabled=False)  # the token changes with it

    with pytest.raises(NoEligiblePool):
        submit()


def test_rows_insert_together_stores_nothing_when_the_guard_fails(live_pools):
    task = submit()
    event = Event(type="x.y", task=task, team_id=task.team_id, payload={})
    twin = Event(type="x.z", task=task, team_id=task.team_id, payload={})

    assert rows_insert_together([event, twin], guard="1 = %s", guard_params=(2,)) is False

    assert Event.objects.filter(type__in=["x.y", "x.z"]).count() == 0
    assert rows_insert_together([event, twin], guard="1 = %s", guard_params=(1,)) is True
    assert event.id is not None and twin.id is not None
    assert set(Event.objects.filter(type__in=["x.y", "x.z"]).values_list("id", flat=True)) == {event.id, twin.id}


def test_rows_insert_together_refuses_a_value_too_long_for_its_column_and_stores_nothing(live_pools):
    """The later rows' values sit in a SELECT list, typed by a cast to their column's type: a cast
    to varchar(n) would cut a longer value silently, where a plain INSERT refuses it."""
    from django.db import DataError

    task = submit()
    event = Event(type="x.kept", task=task, team_id=task.team_id, payload={})
    too_long = Event(type="x" * 65, task=task, team_id=task.team_id, payload={})  # type is varchar(64)

    with pytest.raises(DataError, match="too long"):
        rows_insert_together([event, too_long])

    assert not Event.objects.filter(type__startswith="x").exists()


def test_the_one_statement_is_parsed_once_by_psycopg_not_per_submit(live_pools, sent, monkeypatch):
    from psycopg import _queries

    submit()
    submit()
    parsed_anew: list[bytes] = []

    def counting(uncached):  # what psycopg calls for a query it will not cache (bound on the client or the server)
        def parse(query, *args):
            parsed_anew.append(query)
            return uncached(query, *args)

        return parse

    for name in ("_query2pg_client_nocache", "_query2pg_nocache"):
        monkeypatch.setattr(_queries, name, counting(getattr(_queries, name)))

    with CaptureQueriesContext(connection) as queries:
        for n in range(3):
            submit(prompt=f"parsed once {n}")

    assert sum(1 for q in queries.captured_queries if q["sql"].startswith("WITH")) == 3
    assert parsed_anew == []
