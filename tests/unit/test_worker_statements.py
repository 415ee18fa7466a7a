"""The worker's own claim → finish path (`attempt_finish(claimed=…)`, as workers.attempt calls it).

On PostgreSQL the claim writes its attempt and event in the WITH of its conditional UPDATE, and a
success closes the attempt, the task, its event, its decision and folds the profile in one
statement (coordination.claims, coordination.finishes); on SQLite the same rows are written one
by one. Both must leave the same rows behind, and neither may move a task that changed meanwhile.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent, PerformanceProfile
from coordination.models import Event, RoutingDecision, Task, TaskAttempt
from coordination.processes import HOSTNAME
from coordination.results import AttemptResult
from coordination.services import attempt_finish, attempt_lost, task_cancel, task_claim, task_submit

Outcome = TaskAttempt.Outcome
Status = Task.Status
POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def agent(pools) -> Agent:
    return Agent.objects.create(name="backend@test", pool=pools["backend"], host=HOSTNAME, pid=os.getpid())


def submit() -> Task:
    return task_submit(capabilities=["python"], command=["make", "test"], task_type="build")


def claim(task: Task, agent: Agent) -> TaskAttempt:
    attempt = task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME, budget_free=True)
    assert attempt is not None
    return attempt


def succeeded(output: str = "ok") -> AttemptResult:
    return AttemptResult(
        outcome=Outcome.SUCCEEDED, exit_code=0, output_tail=output, result={"exit_code": 0, "output": output}
    )


def statements(queries: CaptureQueriesContext) -> int:
    """Statements sent, without the test transaction's savepoints."""
    return len([q for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))])


def types(task: Task) -> list[str]:
    return list(Event.objects.filter(task=task).order_by("id").values_list("type", flat=True))


def test_claim_writes_the_attempt_and_its_running_event(pools, agent):
    task = submit()

    with CaptureQueriesContext(connection) as queries:
        attempt = claim(task, agent)

    row = TaskAttempt.objects.get(task=task)
    assert (row.id, row.number, row.agent_id, row.host, row.pid, row.outcome) == (
        attempt.id,
        1,
        agent.id,
        HOSTNAME,
        os.getpid(),
        Outcome.RUNNING,
    )
    assert attempt.task.status == Status.RUNNING and attempt.task.pool.name == "backend"
    running = Event.objects.get(task=task, type="task.running")
    assert (running.payload, running.agent_id, running.pool_id, running.team_id) == (
        {"attempt": 1},
        agent.id,
        task.pool_id,
        task.team_id,
    )
    if POSTGRES:  # one statement: the conditional UPDATE with both INSERTs in its WITH
        assert statements(queries) == 1


def test_claim_of_a_task_no_longer_queued_writes_nothing(pools, agent):
    task = submit()
    Task.objects.filter(id=task.id).update(status=Status.CANCELLED)

    assert task_claim(task_id=str(task.id), agent=agent, pid=os.getpid(), host=HOSTNAME, budget_free=True) is None
    assert not TaskAttempt.objects.filter(task=task).exists()
    assert types(task) == ["task.queued"]


def test_success_closes_attempt_task_event_decision_and_profile(pools, agent):
    for number in (1, 2):
        task = submit()
        attempt = claim(task, agent)
        with CaptureQueriesContext(connection) as queries:
            done = attempt_finish(attempt_id=attempt.id, result=succeeded(f"out {number}"), claimed=attempt)

        assert (done.status, done.result) == (Status.SUCCEEDED, {"exit_code": 0, "output": f"out {number}"})
        task.refresh_from_db()
        assert (task.status, task.result, task.finished_at) == (done.status, done.result, done.finished_at)
        row = TaskAttempt.objects.get(id=attempt.id)
        assert (row.outcome, row.exit_code, row.output_tail, row.finished_at) == (
            Outcome.SUCCEEDED,
            0,
            f"out {number}",
            done.finished_at,
        )
        event = Event.objects.get(task=task, type="task.succeeded")
        assert event.payload["attempt"] == 1 and event.payload["output_tail"] == f"out {number}"
        assert event.agent_id == agent.id and event.pool_id == task.pool_id
        assert types(task) == ["task.queued", "task.running", "task.succeeded"]
        decision = RoutingDecision.objects.get(task=task)
        assert (decision.success, decision.attempts) == (True, 1) and decision.closed_at is not None
        profile = PerformanceProfile.objects.get(agent=agent, task_type="build")
        assert (profile.count, profile.successes, len(profile.recent)) == (number, number, number)
        if POSTGRES:  # one statement, the profile's row new (1) or there (2) alike
            assert statements(queries) == 1


def test_success_of_an_attempt_recovered_meanwhile_changes_nothing(pools, agent):
    task = submit()
    attempt = claim(task, agent)
    attempt_lost(attempt_id=attempt.id, reason="worker died")  # the task is queued again
    count = PerformanceProfile.objects.get(agent=agent, task_type="build").count

    done = attempt_finish(attempt_id=attempt.id, result=succeeded(), claimed=attempt)

    assert done.status == Status.QUEUED
    assert TaskAttempt.objects.get(id=attempt.id).outcome == Outcome.LOST
    assert "task.succeeded" not in types(task)
    assert RoutingDecision.objects.get(task=task).closed_at is None
    assert PerformanceProfile.objects.get(agent=agent, task_type="build").count == count


def test_success_of_a_cancelled_task_closes_the_attempt_only(pools, agent):
    task = submit()
    attempt = claim(task, agent)
    task_cancel(task=task)
    decision = RoutingDecision.objects.get(task=task)

    done = attempt_finish(attempt_id=attempt.id, result=succeeded(), claimed=attempt)

    assert (done.status, done.result) == (Status.CANCELLED, None)
    assert TaskAttempt.objects.get(id=attempt.id).outcome in (Outcome.SUCCEEDED, Outcome.CANCELLED)
    assert "task.succeeded" not in types(task)
    assert RoutingDecision.objects.get(task=task).closed_at == decision.closed_at


def test_profile_folded_by_the_finish_is_the_one_profile_record_computes(pools, agent, settings):
    """The finish's SQL fold of a success (PostgreSQL) against agents.profiles.profile_record fed
    the same attempts, past the plain-average start and past the window of recent durations."""
    from datetime import timedelta

    from agents.profiles import profile_record
    from tests.ml.conftest import with_config

    with_config(settings, intelligence_framework={"learning_rate": 0.2})  # moving averages from the 5th on
    api = settings.HIVE_CONFIG.external_api
    rate = api.intelligence_framework.learning_rate
    assert rate == 0.2
    mirror = Agent.objects.create(name="mirror@test", pool=pools["backend"], host=HOSTNAME, pid=os.getpid())
    window = PerformanceProfile.RECENT_WINDOW
    for number in range(window + 3):
        task = submit()
        attempt = claim(task, agent)
        attempt.started_at -= timedelta(seconds=(number * 7919) % 97 / 10)  # durations in no order
        cost = 0.01 * (number % 4) if number % 3 else None
        result = succeeded()
        result.cost_usd = cost
        attempt_finish(attempt_id=attempt.id, result=result, claimed=attempt)
        row = TaskAttempt.objects.get(id=attempt.id)
        profile_record(
            pool_id=task.pool_id,
            agent_id=mirror.id,
            task_type="build",
            succeeded=True,
            seconds=(row.finished_at - attempt.started_at).total_seconds(),
            cost_usd=cost,
            learning_rate=rate,
        )
    fields = ["count", "successes", "success_rate", "mean_seconds", "p50_seconds", "p95_seconds", "cost_usd", "recent"]
    folded = PerformanceProfile.objects.filter(agent=agent, task_type="build").values(*fields).get()
    expected = PerformanceProfile.objects.filter(agent=mirror, task_type="build").values(*fields).get()
    assert folded["count"] == window + 3 and len(folded["recent"]) == window
    assert folded == {k: pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for k, v in expected.items()}


@pytest.mark.postgresql
def test_claim_and_finish_are_parsed_once_by_psycopg_not_per_task(pools, agent, monkeypatch):
    from psycopg import _queries

    for _ in range(2):  # each statement's first parse fills psycopg's cache
        task = submit()
        attempt_finish(attempt_id=claim(task, agent).id, result=succeeded(), claimed=None)
    parsed_anew: list[int] = []

    def counting(uncached):  # what psycopg calls for a query it will not cache (bound on the client or the server)
        def parse(query, *args):
            parsed_anew.append(len(query))
            return uncached(query, *args)

        return parse

    for name in ("_query2pg_client_nocache", "_query2pg_nocache"):
        monkeypatch.setattr(_queries, name, counting(getattr(_queries, name)))
    for n in range(3):
        task = submit()
        attempt = claim(task, agent)
        with CaptureQueriesContext(connection) as queries:
            attempt_finish(attempt_id=attempt.id, result=succeeded(f"out {n}"), claimed=attempt)
        assert statements(queries) == 1
        assert Task.objects.get(id=task.id).status == Status.SUCCEEDED

    assert parsed_anew == []  # the finish is ~4,400 bytes: beyond psycopg's own 4,096-byte limit


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)  # task_submit is one statement outside a transaction
def test_claim_finish_and_submit_are_prepared_once_per_connection_and_logged_in_full(pools, agent):
    """Bound on the server and prepared on first use: PostgreSQL parses and plans them once per
    connection, not per task. Django's query log still shows each with its values."""

    def prepared() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
            found = [row[0] for row in cursor.fetchall()]
        return {kind: sum(sql.startswith(start) for sql in found) for kind, start in PREPARED_KINDS.items()}

    with CaptureQueriesContext(connection) as queries:
        for n in range(4):
            task = submit()
            attempt = claim(task, agent)
            attempt_finish(attempt_id=attempt.id, result=succeeded(f"out {n}"), claimed=attempt)
            assert Task.objects.get(id=task.id).status == Status.SUCCEEDED

    assert prepared() == {"submit": 1, "claim": 1, "finish": 1}
    finishes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(PREPARED_KINDS["finish"])]
    assert len(finishes) == 4 and "'out 3'" in finishes[-1] and "$1" not in finishes[-1]


PREPARED_KINDS = {
    "submit": 'WITH r0 AS (INSERT INTO "coordination_task"',
    "claim": 'WITH claimed AS (UPDATE "coordination_task"',
    "finish": 'WITH a AS (UPDATE "coordination_taskattempt"',
}


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_migration_elsewhere_that_retypes_a_returned_column_does_not_break_the_prepared_claim(pools, agent):
    """A rolling deploy migrates while workers run: PostgreSQL refuses a prepared statement whose
    result type changed ("cached plan must not change result type") until it is prepared again."""
    import psycopg

    for n in range(2):  # the claim (it returns task_type) is prepared on this connection
        task = submit()
        attempt_finish(attempt_id=claim(task, agent).id, result=succeeded(f"before {n}"), claimed=None)
    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"], host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"] or None, autocommit=True
    )
    retype = 'ALTER TABLE "coordination_task" ALTER COLUMN "task_type" TYPE varchar({})'
    try:
        other.execute(retype.format(65))

        task = submit()
        attempt = claim(task, agent)
        attempt_finish(attempt_id=attempt.id, result=succeeded("after"), claimed=attempt)
    finally:
        other.execute(retype.format(64))
        other.close()

    assert Task.objects.get(id=task.id).status == Status.SUCCEEDED
    assert (attempt.task_id, attempt.number) == (task.id, 1)
