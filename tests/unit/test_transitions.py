"""Task transitions: claim, finish, lose, cancel, retry, redrive, look up; and beat's recovery."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from coordination.errors import InvalidTransition, TaskNotFound
from coordination.fleet import agent_register
from coordination.models import Event, Task, TaskAttempt
from coordination.processes import HOSTNAME
from coordination.recovery import agents_mark_offline, attempts_recover_stale
from coordination.results import AttemptResult
from coordination.services import (
    attempt_finish,
    attempt_heartbeat,
    attempt_lost,
    backoff_delay,
    task_cancel,
    task_claim,
    task_get,
    task_redrive,
    task_retry,
    task_submit,
)
from external_api.errors import http_status

# Claims come from this test process on this machine, as a worker's would: alive, so never orphaned.
# No attempt records a pgid, so recovery never signals a real process.
HOST = HOSTNAME
Outcome = TaskAttempt.Outcome
Status = Task.Status


@pytest.fixture
def agent(pools) -> Agent:
    return Agent.objects.create(name="backend@test", pool=pools["backend"], host=HOST, pid=os.getpid())


def submit(**overrides) -> Task:
    return task_submit(**({"capabilities": ["python"], "command": ["make", "test"]} | overrides))


def claim(task: Task, agent: Agent, *, pid: int = os.getpid(), host: str = HOST) -> TaskAttempt | None:
    return task_claim(task_id=str(task.id), agent=agent, pid=pid, host=host)


def set_status(task: Task, status: str, **fields) -> Task:
    Task.objects.filter(id=task.id).update(status=status, **fields)
    task.refresh_from_db()
    return task


def events(task: Task, type: str) -> list[Event]:
    return list(Event.objects.filter(task=task, type=type))


def failed(error: str = "boom", *, permanent: bool = False) -> AttemptResult:
    return AttemptResult(outcome=Outcome.FAILED, exit_code=1, error=error, permanent=permanent, is_error=True)


SUCCEEDED = AttemptResult(outcome=Outcome.SUCCEEDED, exit_code=0, result={"output": "ok"})


# --- cancel ---------------------------------------------------------------------------------------


def test_task_cancel_queued_task_becomes_cancelled_with_event(pools):
    task = submit()

    task_cancel(task=task, reason="not needed")

    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert task.error == "not needed"
    assert task.finished_at is not None
    assert [e.payload for e in events(task, "task.cancelled")] == [{"reason": "not needed"}]


def test_task_cancel_succeeded_task_raises_invalid_transition_and_changes_nothing(pools):
    task = set_status(submit(), Status.SUCCEEDED, result={"output": "ok"})

    with pytest.raises(InvalidTransition) as caught:
        task_cancel(task=task)

    assert (caught.value.code, http_status(caught.value)) == ("invalid_state", 409)
    assert f"task {task.id} is succeeded" in caught.value.detail
    task.refresh_from_db()
    assert (task.status, task.result) == (Status.SUCCEEDED, {"output": "ok"})
    assert events(task, "task.cancelled") == []


def test_task_cancel_running_task_stops_its_attempt_and_its_success_is_ignored(pools, agent):
    task = submit()
    attempt = claim(task, agent)

    task_cancel(task=task)

    assert attempt_heartbeat(attempt=attempt) is False
    attempt_finish(attempt_id=attempt.id, result=SUCCEEDED)
    task.refresh_from_db()
    assert (task.status, task.result) == (Status.CANCELLED, None)
    assert events(task, "task.succeeded") == []


# --- retry and redrive ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED, Status.DEAD])
def test_task_retry_finished_task_is_queued_with_a_fresh_budget(pools, status):
    task = set_status(submit(), status, attempts=3, error="boom", result={"x": 1}, finished_at=timezone.now())

    task_retry(task=task)

    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert task.max_attempts == 3 + task.attempt_budget
    assert (task.error, task.result, task.finished_at, task.agent) == ("", None, None, None)
    assert len(events(task, "task.retried")) == 1


@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING, Status.SUCCEEDED])
def test_task_retry_active_or_succeeded_task_raises_invalid_transition(pools, status):
    task = set_status(submit(), status)

    with pytest.raises(InvalidTransition) as caught:
        task_retry(task=task)

    assert caught.value.detail == f"task {task.id} is {status}: only failed or cancelled or dead tasks can be run again"
    task.refresh_from_db()
    assert task.status == status
    assert events(task, "task.retried") == []


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED, Status.QUEUED])
def test_task_redrive_not_dead_task_raises_invalid_transition(pools, status):
    task = set_status(submit(), status)

    with pytest.raises(InvalidTransition, match=f"is {status}: only dead tasks can be run again"):
        task_redrive(task=task)

    task.refresh_from_db()
    assert task.status == status


def test_task_redrive_dead_task_gets_attempt_budget_more_attempts(pools, agent):
    task = submit(max_attempts=2)
    for _ in range(2):
        attempt_finish(attempt_id=claim(task, agent).id, result=failed())
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.DEAD, 2)

    task_redrive(task=task)

    task.refresh_from_db()
    assert (task.status, task.max_attempts) == (Status.QUEUED, 2 + 2)
    assert len(events(task, "task.redriven")) == 1
    # attempt 3 of 4 fails: the task is queued again, not dead
    assert attempt_finish(attempt_id=claim(task, agent).id, result=failed()).status == Status.QUEUED


# --- claim ----------------------------------------------------------------------------------------


def test_task_claim_queued_task_is_claimed_once(pools, agent):
    task = submit()
    other = Agent.objects.create(name="backend2@test", pool=pools["backend"])

    attempt = claim(task, agent)
    second = claim(task, other)

    assert second is None
    task.refresh_from_db()
    assert (task.status, task.attempts, task.agent) == (Status.RUNNING, 1, agent)
    assert list(task.attempt_set.values_list("number", "agent__name", "outcome")) == [
        (1, "backend@test", Outcome.RUNNING)
    ]
    assert attempt.number == 1
    assert [e.payload["attempt"] for e in events(task, "task.running")] == [1]


def test_task_claim_cancelled_task_returns_none_and_starts_nothing(pools, agent):
    task = submit()
    task_cancel(task=task)

    assert claim(task, agent) is None
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.CANCELLED, 0)
    assert not TaskAttempt.objects.exists()


def test_task_claim_running_task_whose_worker_died_here_is_recovered(pools, agent):
    dead = subprocess.Popen(["true"])
    dead.wait()
    task = submit()
    first = claim(task, agent, pid=dead.pid)

    assert claim(task, agent) is None  # the redelivered message finds the orphan

    first.refresh_from_db()
    assert first.outcome == Outcome.LOST
    assert first.error == f"worker process {dead.pid} died"
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert claim(task, agent).number == 2


# --- finish ---------------------------------------------------------------------------------------


def test_attempt_finish_success_sets_succeeded_and_result(pools, agent):
    task = submit()
    attempt = claim(task, agent)

    done = attempt_finish(attempt_id=attempt.id, result=SUCCEEDED)

    assert (done.status, done.result, done.error) == (Status.SUCCEEDED, {"output": "ok"}, "")
    assert done.finished_at is not None
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.exit_code) == (Outcome.SUCCEEDED, 0)
    assert [e.payload["exit_code"] for e in events(task, "task.succeeded")] == [0]


def test_attempt_finish_failure_with_attempts_left_queues_with_backoff(pools, agent):
    task = submit()
    attempt = claim(task, agent)
    before = timezone.now()

    done = attempt_finish(attempt_id=attempt.id, result=failed("exit 1: tests failed"))

    assert (done.status, done.agent, done.error) == (Status.QUEUED, None, "exit 1: tests failed")
    assert done.available_at > before
    (retrying,) = events(task, "task.retrying")
    assert retrying.payload["attempt"] == 1
    assert retrying.payload["error"] == "exit 1: tests failed"
    assert 0.5 <= retrying.payload["delay"] <= 1.0
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.error) == (Outcome.FAILED, "exit 1: tests failed")


def test_attempt_finish_failure_of_last_attempt_marks_dead(pools, agent):
    task = submit(max_attempts=1)

    done = attempt_finish(attempt_id=claim(task, agent).id, result=failed())

    assert done.status == Status.DEAD
    assert done.finished_at is not None
    assert len(events(task, "task.dead")) == 1
    assert events(task, "task.retrying") == []


def test_attempt_finish_permanent_failure_marks_failed_without_retry(pools, agent):
    task = submit(max_attempts=5)

    done = attempt_finish(attempt_id=claim(task, agent).id, result=failed("program missing", permanent=True))

    assert (done.status, done.error) == (Status.FAILED, "program missing")
    assert [e.payload["error"] for e in events(task, "task.failed")] == ["program missing"]
    assert events(task, "task.retrying") == []


def test_attempt_finish_twice_changes_nothing_the_second_time(pools, agent):
    task = submit()
    attempt = claim(task, agent)
    attempt_finish(attempt_id=attempt.id, result=SUCCEEDED)
    count = Event.objects.count()

    done = attempt_finish(attempt_id=attempt.id, result=failed("late"))

    assert (done.status, done.result) == (Status.SUCCEEDED, {"output": "ok"})
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.error) == (Outcome.SUCCEEDED, "")
    assert Event.objects.count() == count


@pytest.mark.parametrize("result", [SUCCEEDED, failed()], ids=["success", "failure"])
def test_attempt_finish_stale_attempt_cannot_overwrite_the_current_one(pools, agent, result):
    task = submit()
    stale = claim(task, agent)
    set_status(task, Status.QUEUED)  # e.g. the message was redelivered and claimed again
    current = claim(task, agent)

    done = attempt_finish(attempt_id=stale.id, result=result)

    assert (done.status, done.attempts, done.result) == (Status.RUNNING, 2, None)
    assert events(task, "task.succeeded") == events(task, "task.retrying") == []
    assert attempt_heartbeat(attempt=current) is True
    assert attempt_heartbeat(attempt=stale) is False


def test_attempt_lost_requeues_the_task(pools, agent):
    task = submit()
    attempt = claim(task, agent)

    attempt_lost(attempt_id=attempt.id, reason="worker vanished")

    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.error) == (Outcome.LOST, "worker vanished")
    task.refresh_from_db()
    assert (task.status, task.error) == (Status.QUEUED, "worker vanished")
    assert len(events(task, "task.retrying")) == 1


# --- backoff --------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3, 5, 9, 10, 20, 100])
def test_backoff_delay_lies_between_half_the_cap_and_the_cap(number):
    cap = min(300.0, 2.0 ** (number - 1))

    delays = [backoff_delay(number) for _ in range(200)]

    assert all(cap / 2 <= d <= cap for d in delays), (cap, min(delays), max(delays))
    assert len(set(delays)) > 1  # jittered


def test_backoff_delay_huge_attempt_number_is_capped():
    assert 150.0 <= backoff_delay(2000) <= 300.0


# --- lookup ---------------------------------------------------------------------------------------


def test_task_get_full_id_and_prefix_find_the_task(pools):
    task = submit()
    ident = str(task.id)

    assert task_get(ident).id == task.id
    assert task_get(task.id.hex).id == task.id
    assert task_get(f"  {ident[:8].upper()} ").id == task.id


@pytest.mark.parametrize(
    "ident", ["0" * 8, str(uuid.UUID(int=7)), "abc", "not-a-uuid-but-long-enough-to-look-like-one"]
)
def test_task_get_unknown_id_raises_task_not_found(pools, ident):
    submit()

    with pytest.raises(TaskNotFound) as caught:
        task_get(ident)

    assert (caught.value.code, http_status(caught.value)) == ("not_found", 404)
    assert caught.value.detail == f"no task {ident!r}"


def test_task_get_ambiguous_prefix_asks_for_more_characters(pools):
    for tail in ("1", "2"):
        Task.objects.create(id=uuid.UUID(f"abcdef12-0000-0000-0000-00000000000{tail}"), timeout=60, pool=pools["ios"])

    with pytest.raises(TaskNotFound, match="prefix 'abcdef12' is ambiguous"):
        task_get("abcdef12")
    assert task_get("abcdef12-0000-0000-0000-000000000002").id.hex.endswith("2")


# --- recovery -------------------------------------------------------------------------------------


def test_agents_mark_offline_silent_agent_goes_offline_and_its_task_is_queued_again(pools, agent):
    task = submit()
    attempt = claim(task, agent)
    Agent.objects.filter(id=agent.id).update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    fresh = Agent.objects.create(name="backend2@test", pool=pools["backend"])

    assert agents_mark_offline(older_than=timedelta(seconds=3)) == 1

    agent.refresh_from_db()
    fresh.refresh_from_db()
    assert (agent.status, fresh.status) == (Agent.Status.OFFLINE, Agent.Status.ONLINE)
    assert Event.objects.filter(type="agent.offline", agent=agent).count() == 1
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.error) == (Outcome.LOST, "agent backend@test went offline")
    task.refresh_from_db()
    assert (task.status, task.agent) == (Status.QUEUED, None)


def test_attempts_recover_stale_silent_attempt_is_lost_and_task_queued(pools, agent):
    silent, beating = submit(), submit()
    old = claim(silent, agent)
    claim(beating, agent)
    TaskAttempt.objects.filter(id=old.id).update(heartbeat_at=timezone.now() - timedelta(minutes=5))

    assert attempts_recover_stale(older_than=timedelta(seconds=3)) == 1

    silent.refresh_from_db()
    beating.refresh_from_db()
    assert (silent.status, beating.status) == (Status.QUEUED, Status.RUNNING)
    assert TaskAttempt.objects.get(id=old.id).error == "the attempt stopped sending heartbeats"


def test_agent_register_with_leftover_running_attempt_recovers_it(pools, agent):
    task = submit()
    attempt = claim(task, agent)
    incarnation = agent.incarnation

    again = agent_register(name="backend@test", pool=pools["backend"], host=HOST, pid=999, concurrency=1)

    assert again.id == agent.id and again.incarnation != incarnation
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.error) == (Outcome.LOST, "agent backend@test restarted")
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert Event.objects.filter(type="agent.online", agent=agent).count() == 1
