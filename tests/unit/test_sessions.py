"""Coordination sessions through their services: what is refused (and leaves no trace), how a DAG,
a fan-out and a consensus move on as their tasks end, cancel, timeout, and the hook's idempotency.

Workers are played by this process: claim and finish through the same services a worker calls.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent, AgentPool
from coordination.errors import InvalidSession, InvalidTransition
from coordination.models import CoordinationSession, Event, SessionStep, Task, Team
from coordination.processes import HOSTNAME
from coordination.results import AttemptResult
from coordination.services import attempt_finish, task_claim
from coordination.sessions import session_advance, session_cancel, session_create, session_reconcile
from external_api.errors import http_status

Outcome = Task.Status


def cmd(name: str, *deps: str, command: list[str] | None = None, caps: tuple[str, ...] = ("python",), **extra):
    step = {"name": name, "command": command or ["true"], "capabilities": list(caps), **extra}
    if deps:
        step["depends_on"] = list(deps)
    return step


def plan(*steps: dict, mode: str = "dag", **extra) -> dict:
    return {"name": "ship it", "mode": mode, "steps": list(steps), **extra}


@pytest.fixture
def agents(pools) -> dict[str, Agent]:
    return {
        name: Agent.objects.create(name=f"{name}@test", pool=pool, host=HOSTNAME, pid=os.getpid())
        for name, pool in pools.items()
    }


@pytest.fixture
def run(agents, django_capture_on_commit_callbacks):
    """run(session, step_name, ok=True, output=..., result=...): a worker claims and finishes the
    step's task; the session hook runs as it does after a real commit."""

    def finish(session: CoordinationSession, name: str, *, ok: bool = True, output: str = "", result=None) -> Task:
        step = session.steps.select_related("task__pool").get(name=name)
        assert step.task is not None, f"step {name} is {step.status}, not queued"
        attempt = task_claim(
            task_id=str(step.task_id), agent=agents[step.task.pool.name], pid=os.getpid(), host=HOSTNAME
        )
        assert attempt is not None
        outcome = AttemptResult(
            outcome="succeeded" if ok else "failed",
            exit_code=0 if ok else 3,
            output_tail=output,
            error="" if ok else "exited with status 3",
            permanent=not ok,
            result=(result if result is not None else {"exit_code": 0, "output": output}) if ok else None,
        )
        with django_capture_on_commit_callbacks(execute=True):
            attempt_finish(attempt_id=attempt.id, result=outcome)
        return Task.objects.get(id=step.task_id)

    return finish


def statuses(session: CoordinationSession) -> dict[str, str]:
    return dict(session.steps.values_list("name", "status"))


def counts() -> tuple[int, ...]:
    return (
        CoordinationSession.objects.count(),
        SessionStep.objects.count(),
        Task.objects.count(),
        Event.objects.count(),
    )


# --- refused plans --------------------------------------------------------------------------------

REFUSED = [
    pytest.param(plan(cmd("a", "b"), cmd("b", "a")), "the steps form a cycle: a -> b -> a", id="cycle"),
    pytest.param(
        plan(cmd("a"), cmd("b", "a", "d"), cmd("c", "b"), cmd("d", "c")),
        "the steps form a cycle: b -> d -> c -> b",
        id="longer-cycle",
    ),
    pytest.param(plan(cmd("a", "a")), "the steps form a cycle: a -> a", id="self-cycle"),
    pytest.param(
        plan(cmd("a"), cmd("b", "x")), "step b depends on x, which is not a step of this plan", id="unknown-dependency"
    ),
    pytest.param(
        plan(*[cmd(f"s{i}") for i in range(11)]),
        "the plan has 11 steps (participants); at most 10 are allowed",
        id="too-many-steps",
    ),
    pytest.param(
        plan(cmd("v", count=11), mode="consensus"), "the plan has 11 steps (participants)", id="too-many-copies"
    ),
    pytest.param(plan(cmd("a"), cmd("b", caps=("cobol",))), "step b: no pool offers cobol:", id="unroutable"),
    pytest.param(
        plan(cmd("a", caps=("ui",), targets=["backend", "ios"]), mode="fan_out"),
        "step a-backend: pool backend cannot run it (eligible: frontend, ios)",
        id="target-cannot-run",
    ),
    pytest.param(
        plan(cmd("a", targets=["nowhere"]), mode="fan_out"),
        "step a-nowhere: there is no enabled pool nowhere",
        id="target-unknown",
    ),
    pytest.param(
        plan(cmd("a", priority="urgent")), "step a: priority must be one of low, normal, high, critical", id="bad-spec"
    ),
    pytest.param(
        plan({"name": "a", "capabilities": ["python"]}), "step a: a task needs a prompt or a command", id="no-prompt"
    ),
    pytest.param(
        plan(cmd("a"), cmd("b", command=["echo", "{steps.a.result}"])),
        "step b uses {steps.a.result} but does not depend on a",
        id="placeholder-not-a-dependency",
    ),
    pytest.param(
        plan(cmd("a"), cmd("b", "a", command=["echo", "{steps.a.exit}"])),
        "step b: {steps.a.exit} reads nothing",
        id="placeholder-field",
    ),
    pytest.param(plan(cmd("a", colour="red")), "step a: unknown field 'colour'", id="unknown-step-field"),
    pytest.param(plan(cmd("a"), cmd("a")), "two steps are named a", id="duplicate-name"),
    pytest.param(plan(cmd("a b")), "steps[0].name must start with a letter", id="bad-name"),
    pytest.param(plan(cmd("v"), mode="consensus"), "a consensus needs at least 2 participants", id="lonely-consensus"),
    pytest.param(
        plan(cmd("a", count=2)), "step a: targets and count apply to fan_out and consensus", id="count-in-dag"
    ),
    pytest.param(
        plan(cmd("a"), cmd("b", "a"), mode="fan_out"),
        "step b: depends_on applies to dag sessions only",
        id="depends-in-fan-out",
    ),
    pytest.param(
        plan(cmd("a"), timeout=601),
        "timeout must be a number of seconds above 0 and at most 600",
        id="timeout-over-the-limit",
    ),
    pytest.param(plan(cmd("a"), mode="swarm"), "mode must be one of dag, fan_out, consensus, not 'swarm'", id="mode"),
    pytest.param(
        plan(cmd("a"), consensus_threshold=0.5),
        "consensus_threshold applies to consensus sessions only",
        id="threshold-outside-consensus",
    ),
    pytest.param(
        plan(cmd("v", count=3), mode="consensus", consensus_threshold=1.5),
        "consensus_threshold must be a number above 0 and at most 1",
        id="threshold-range",
    ),
    pytest.param(plan(cmd("a", payload={"steps": 1})), "step a: payload.steps is reserved", id="reserved-payload"),
    pytest.param({"mode": "dag", "steps": [cmd("a")]}, "name must be the session's goal", id="no-name"),
    pytest.param(plan(), "steps must be a non-empty list of steps", id="no-steps"),
    pytest.param(["a"], "a session plan must be an object", id="not-an-object"),
    pytest.param(plan(cmd("a"), retries=3), "unknown plan field 'retries'", id="unknown-plan-field"),
]


@pytest.mark.parametrize(("bad_plan", "detail"), REFUSED)
def test_session_create_refused_plan_raises_invalid_session_and_stores_nothing(pools, bad_plan, detail):
    before = counts()

    with pytest.raises(InvalidSession) as caught:
        session_create(plan=bad_plan)

    assert detail in caught.value.detail
    assert (caught.value.code, http_status(caught.value)) == ("invalid_session", 400)
    assert counts() == before


def test_session_create_when_coordination_is_switched_off_is_refused(pools, settings):
    conf = settings.HIVE_CONFIG.external_api.agent_coordination
    settings.HIVE_CONFIG = settings.HIVE_CONFIG.model_copy(
        update={
            "external_api": settings.HIVE_CONFIG.external_api.model_copy(
                update={"agent_coordination": conf.model_copy(update={"enabled": False})}
            )
        }
    )

    with pytest.raises(InvalidSession) as caught:
        session_create(plan=plan(cmd("a")))

    assert caught.value.code == "sessions_disabled"
    assert counts() == (0, 0, 0, 0)


def test_session_create_max_participants_comes_from_the_configuration(pools, settings):
    conf = settings.HIVE_CONFIG.external_api.agent_coordination
    settings.HIVE_CONFIG = settings.HIVE_CONFIG.model_copy(
        update={
            "external_api": settings.HIVE_CONFIG.external_api.model_copy(
                update={"agent_coordination": conf.model_copy(update={"max_participants": 2})}
            )
        }
    )

    with pytest.raises(InvalidSession) as caught:
        session_create(plan=plan(cmd("a"), cmd("b"), cmd("c")))

    assert "the plan has 3 steps (participants); at most 2 are allowed" in caught.value.detail


# --- dag ----------------------------------------------------------------------------------------------


def test_session_create_dag_queues_only_the_steps_that_wait_for_nothing(pools):
    session = session_create(plan=plan(cmd("a"), cmd("b"), cmd("c", "a", "b")), team=Team.objects.create(name="acme"))

    assert session.status == "running" and session.started_at is not None
    assert statuses(session) == {"a": "queued", "b": "queued", "c": "waiting"}
    assert abs((session.deadline - session.started_at).total_seconds() - 600) < 1  # session_timeout
    tasks = Task.objects.filter(session_step__session=session)
    assert {t.source for t in tasks} == {"session"} and {t.team.name for t in tasks} == {"acme"}
    types = list(Event.objects.filter(payload__session=str(session.id)).values_list("type", flat=True))
    assert types == ["session.created", "session.step_queued", "session.step_queued"]


def test_session_advance_dag_hands_results_to_the_dependent_in_its_payload_and_prompt(pools, run):
    session = session_create(
        plan=plan(
            cmd("a"),
            cmd("b"),
            {
                "name": "c",
                "prompt": "combine {steps.a.result} and {steps.b.output}",
                "capabilities": ["python"],
                "command": ["echo", "{steps.a.result}"],
                "depends_on": ["a", "b"],
            },
        )
    )

    run(session, "a", output="first line\n42\n")
    assert statuses(session)["c"] == "waiting"
    run(session, "b", output="from b")

    step = session.steps.select_related("task").get(name="c")
    assert step.status == "queued"
    assert step.task.prompt == "combine first line\n42 and from b"
    assert step.task.command == ["echo", "{steps.a.result}"]  # the runner fills argv from the payload
    assert step.task.payload["steps"]["a"] == {
        "status": "succeeded",
        "result": "first line\n42",
        "output": "first line\n42\n",
        "task": str(session.steps.get(name="a").task_id),
    }
    assert step.task.payload["steps"]["b"]["result"] == "from b"
    assert step.latency is not None and 0 <= step.latency < 5


def test_session_hand_off_is_observed_by_the_coordination_latency_histogram(pools, run):
    from prometheus_client import REGISTRY

    def observed() -> float:
        labels = {"stage": "dependency"}
        return REGISTRY.get_sample_value("agent_hive_coordination_latency_seconds_count", labels) or 0.0

    session = session_create(plan=plan(cmd("a"), cmd("b", "a"), cmd("c", "a")))
    before = observed()

    run(session, "a")

    assert observed() == before + 2  # b and c, each queued once


def test_session_advance_dag_all_steps_succeeded_ends_the_session_succeeded(pools, run):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a")))

    run(session, "a")
    run(session, "b")

    session.refresh_from_db()
    assert session.status == "succeeded" and session.finished_at is not None
    assert Event.objects.filter(type="session.succeeded", payload__session=str(session.id)).count() == 1


def test_session_advance_failed_step_cancels_its_dependents_with_the_reason(pools, run):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a"), cmd("c", "b"), cmd("d")))

    run(session, "a", ok=False)

    steps = {s.name: s for s in session.steps.all()}
    assert steps["a"].status == "failed" and "exited with status 3" in steps["a"].reason
    assert (steps["b"].status, steps["b"].reason) == ("cancelled", "dependency a failed")
    assert (steps["c"].status, steps["c"].reason) == ("cancelled", "dependency b was cancelled")
    assert steps["b"].task_id is None and steps["c"].task_id is None
    session.refresh_from_db()
    assert session.status == "running"  # d still runs
    run(session, "d")
    session.refresh_from_db()
    assert session.status == "failed"
    assert session.reason == "step a failed: exited with status 3"


def test_session_advance_continue_on_failure_runs_the_dependents_of_a_failed_step(pools, run):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a"), continue_on_failure=True))

    run(session, "a", ok=False)

    step = session.steps.select_related("task").get(name="b")
    assert step.status == "queued"
    assert step.task.payload["steps"]["a"]["status"] == "failed"
    run(session, "b")
    session.refresh_from_db()
    assert session.status == "failed"  # a step failed, though every step ran


def test_session_advance_twice_changes_nothing_the_second_time(pools, run):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a")))
    run(session, "a")
    before = (counts(), statuses(session))

    session_advance(session_id=session.id)
    session_reconcile()

    assert (counts(), statuses(session)) == before


def test_session_reconcile_queues_a_step_whose_hook_was_lost(pools, agents):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a")))
    task = session.steps.get(name="a").task
    attempt = task_claim(task_id=str(task.id), agent=agents["backend"], pid=os.getpid(), host=HOSTNAME)
    attempt_finish(attempt_id=attempt.id, result=AttemptResult(outcome="succeeded", exit_code=0))  # no hook runs
    assert statuses(session) == {"a": "running", "b": "waiting"}

    report = session_reconcile()

    assert report["sessions"] == 1
    assert statuses(session) == {"a": "succeeded", "b": "queued"}


# --- fan-out and consensus ---------------------------------------------------------------------------


def test_session_fan_out_to_two_pools_runs_a_copy_on_each_and_collects_both(pools, run):
    session = session_create(plan=plan(cmd("lint", caps=("ui",), targets=["frontend", "ios"]), mode="fan_out"))

    copies = {s.name: s.task.pool.name for s in session.steps.select_related("task__pool")}
    assert copies == {"lint-frontend": "frontend", "lint-ios": "ios"}
    run(session, "lint-frontend", output="clean\n")
    run(session, "lint-ios", output="2 warnings\n")

    session.refresh_from_db()
    assert session.status == "succeeded"
    assert session.decision == {
        "results": {"lint-frontend": "clean", "lint-ios": "2 warnings"},
        "succeeded": 2,
        "failed": 0,
    }


@pytest.mark.parametrize(("threshold", "status", "answer"), [(0.7, "no_consensus", None), (0.6, "succeeded", "yes")])
def test_session_consensus_two_of_three_agree(pools, run, threshold, status, answer):
    session = session_create(plan=plan(cmd("v", count=3), mode="consensus", consensus_threshold=threshold))

    run(session, "v-1", output='{"vote": " Yes"}')
    run(session, "v-2", output="thinking it over\nYES\n")
    run(session, "v-3", output="no")

    session.refresh_from_db()
    assert session.status == status
    assert session.decision["answer"] == answer
    assert session.decision["tally"] == {"yes": 2, "no": 1}
    assert session.decision["share"] == 0.6667
    decided = Event.objects.get(type="session.decided", payload__session=str(session.id))
    assert decided.payload["tally"] == {"yes": 2, "no": 1} and decided.payload["status"] == status
    assert Event.objects.filter(type=f"session.{status}", payload__session=str(session.id)).count() == 1


def test_session_consensus_default_threshold_is_the_configured_one(pools):
    session = session_create(plan=plan(cmd("v", count=2), mode="consensus"))

    assert session.consensus_threshold == 0.7


# --- cancel and timeout --------------------------------------------------------------------------------


def test_session_cancel_cancels_running_tasks_and_waiting_steps(pools, run, django_capture_on_commit_callbacks):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a"), cmd("c")))
    run(session, "c")

    with django_capture_on_commit_callbacks(execute=True):
        session_cancel(session=session, reason="not needed")

    session.refresh_from_db()
    assert (session.status, session.reason) == ("cancelled", "not needed")
    assert statuses(session) == {"a": "cancelled", "b": "cancelled", "c": "succeeded"}
    assert session.steps.get(name="a").task.status == "cancelled"
    with pytest.raises(InvalidTransition) as caught:
        session_cancel(session=session)
    assert "is cancelled: only pending or running sessions can be cancelled" in caught.value.detail


def test_session_reconcile_past_the_deadline_times_the_session_out(pools, run):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a"), cmd("c"), timeout=30))
    run(session, "c")
    CoordinationSession.objects.filter(id=session.id).update(deadline=timezone.now() - timedelta(seconds=1))

    report = session_reconcile()

    session.refresh_from_db()
    assert report["timed_out"] == 1
    assert (session.status, session.reason) == ("timed_out", "the session ran past its timeout of 30s")
    assert statuses(session) == {"a": "cancelled", "b": "cancelled", "c": "succeeded"}
    assert session.steps.get(name="a").task.status == "cancelled"
    assert Event.objects.filter(type="session.timed_out").count() == 1


def test_session_queue_time_refusal_fails_the_step_with_the_reason(pools, run):
    session = session_create(plan=plan(cmd("a"), cmd("b", "a")))
    AgentPool.objects.filter(name="backend").update(enabled=False)

    run(session, "a")

    step = session.steps.get(name="b")
    assert step.status == "failed" and step.reason.startswith("could not be queued: no pool offers python")
    session.refresh_from_db()
    assert session.status == "failed"


def test_task_cancel_of_a_steps_task_cancels_the_step_and_its_dependents(pools, django_capture_on_commit_callbacks):
    from coordination.services import task_cancel

    session = session_create(plan=plan(cmd("a"), cmd("b", "a")))

    with django_capture_on_commit_callbacks(execute=True):
        task_cancel(task=session.steps.get(name="a").task, reason="operator said so")

    steps = {s.name: s for s in session.steps.all()}
    assert (steps["a"].status, steps["a"].reason) == ("cancelled", "operator said so")
    assert (steps["b"].status, steps["b"].reason) == ("cancelled", "dependency a was cancelled")
    session.refresh_from_db()
    assert session.status == "failed" and session.reason == "step a cancelled: operator said so"


# --- answers and votes (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "vote"),
    [
        pytest.param({"exit_code": 0, "output": '{"vote": " Yes "}'}, "yes", id="json-vote"),
        pytest.param({"exit_code": 0, "output": "let me think\n\nApprove  \n\n"}, "approve", id="last-line"),
        pytest.param({"exit_code": 0, "output": 'reasoning\n{"vote": "B", "why": "faster"}'}, "b", id="json-last-line"),
        pytest.param({"exit_code": 0, "result": "I choose:\nOption A", "subtype": "success"}, "option a", id="claude"),
        pytest.param({"exit_code": 0, "value": {"vote": "NO", "confidence": 0.9}}, "no", id="python-dict"),
        pytest.param({"exit_code": 0, "value": 42}, "42", id="python-number"),
        pytest.param({"exit_code": 0, "output": "  \n"}, None, id="empty"),
        pytest.param(None, None, id="no-result"),
    ],
)
def test_vote_of_normalises_the_answer(result, vote):
    from coordination.consensus import vote_of

    assert vote_of(result) == vote


@pytest.mark.parametrize(
    ("votes", "threshold", "answer", "share"),
    [
        (["yes", "yes", "no"], 0.7, None, 0.6667),
        (["yes", "yes", "no"], 0.6, "yes", 0.6667),
        (["yes", "yes", None], 0.6, "yes", 0.6667),  # a silent participant still counts
        (["yes", "no"], 0.5, None, 0.5),  # a tie decides nothing
        (["a", "a", "a"], 1.0, "a", 1.0),
        ([None, None], 0.5, None, 0.0),
    ],
)
def test_decide_needs_a_unique_answer_whose_share_of_participants_reaches_the_threshold(
    votes, threshold, answer, share
):
    from coordination.consensus import decide

    decision = decide(votes, threshold=threshold)

    assert (decision["answer"], decision["share"]) == (answer, share)
    assert decision["participants"] == len(votes)
    assert decision["abstained"] == votes.count(None)


def test_find_cycle_names_the_cycle_or_none():
    from coordination.plans import find_cycle

    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None
    assert find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]}) == ["a", "c", "b", "a"]


# --- the runner's side: argv placeholders and files ------------------------------------------------------


def test_runner_fills_step_placeholders_in_one_pass_and_writes_step_files(tmp_path):
    from workers.attempt import expand, write_step_inputs

    payload = {
        "steps": {"a": {"status": "succeeded", "result": "{payload.missing} 42", "output": "x\n42", "task": "t-1"}}
    }
    task = Task(id="00000000-0000-0000-0000-000000000001", prompt="p", payload=payload, timeout=1)

    assert expand("got {steps.a.result}", task, 1, tmp_path) == "got {payload.missing} 42"
    assert expand("{steps.a.output}", task, 1, tmp_path) == "x\n42"
    write_step_inputs(tmp_path, payload)
    import json

    assert json.loads((tmp_path / "steps" / "a.json").read_text()) == payload["steps"]["a"]


def test_runner_refuses_a_step_placeholder_the_task_carries_no_result_for(tmp_path):
    from workers.attempt import Refusal, expand

    task = Task(id="00000000-0000-0000-0000-000000000001", prompt="p", payload={}, timeout=1)

    with pytest.raises(Refusal, match=r"the argv needs \{steps.b.result\}, and the task carries no result of step 'b'"):
        expand("{steps.b.result}", task, 1, tmp_path)
