"""Alerts and the monitoring round against the database: conditions from the agents' reports and the
pools' queues, one raise per episode, escalation, resolve, recommendations, the one-active-row
constraint, the pool samples and their pruning, monitoring switched off, the webhook's body."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent, AgentPool
from agents.resources import ResourceSample
from coordination.alerts import (
    Condition,
    Report,
    _standing_update,
    alerts_evaluate,
    queue_conditions,
    recommend,
    resource_conditions,
)
from coordination.leases import lease_acquire
from coordination.models import Alert, Event, PoolSample, Task
from coordination.monitoring import monitoring_tick
from coordination.notify import alert_notify, backoff, webhook_body
from coordination.scaling.policy import PoolState
from hive_project.config import AlertThresholdsConfig

NOW = timezone.now()
MEMORY_WARNING = {
    "resource": "memory",
    "level": "warning",
    "value": 80.0,
    "threshold": 75.0,
    "source": "resources.thresholds.warning",
}
MEMORY_CRITICAL = {
    **MEMORY_WARNING,
    "level": "critical",
    "value": 95.0,
    "threshold": 90.0,
    "source": "resources.thresholds.critical",
}


def configure(settings, **changes: object) -> None:
    """The suite's configuration with keys changed, named by their dotted path with `__` for dots."""
    config = settings.HIVE_CONFIG
    for dotted, value in changes.items():
        config = _replace(config, dotted.split("__"), value)
    settings.HIVE_CONFIG = config


def _replace(model, path: list[str], value: object):
    head, *rest = path
    return model.model_copy(update={head: _replace(getattr(model, head), rest, value) if rest else value})


def report(agent: str, host: str, *alerts: dict, pool: str = "backend", **values: float) -> Report:
    return Report(agent=agent, host=host, pool=pool, resources={**values, "alerts": list(alerts)})


def heartbeat(pool: AgentPool, name: str, *alerts: dict, host: str = "host-1", **values: float) -> Agent:
    """An online agent whose last heartbeat reported these alert levels (as workers.agent does)."""
    agent, _ = Agent.objects.update_or_create(
        name=name,
        defaults={
            "pool": pool,
            "host": host,
            "status": Agent.Status.ONLINE,
            "last_heartbeat": timezone.now(),
            "resources": {**values, "alerts": list(alerts)},
        },
    )
    return agent


def queue(pool: AgentPool, n: int) -> None:
    Task.objects.bulk_create(
        Task(pool=pool, status=Task.Status.QUEUED, capabilities=["python"], command=["true"], timeout=60)
        for _ in range(n)
    )


# --- pure ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([], []),
        ([report("a@h1", "h1")], []),
        ([report("a@h1", "h1", MEMORY_WARNING)], [("memory@h1", "warning", 80.0, ("a@h1",))]),
        # two agents on one host measure the same machine: one condition, the highest level, both named
        (
            [report("a@h1", "h1", MEMORY_WARNING), report("b@h1", "h1", MEMORY_CRITICAL)],
            [("memory@h1", "critical", 95.0, ("a@h1", "b@h1"))],
        ),
        # two hosts: two conditions
        (
            [report("a@h1", "h1", MEMORY_WARNING), report("b@h2", "h2", MEMORY_WARNING)],
            [("memory@h1", "warning", 80.0, ("a@h1",)), ("memory@h2", "warning", 80.0, ("b@h2",))],
        ),
        # what is not a well-formed report is skipped, not raised
        (
            [
                report(
                    "a@h1",
                    "h1",
                    {"resource": "swap", "level": "warning", "value": 1, "threshold": 1, "source": "x"},
                    {**MEMORY_WARNING, "level": "panic"},
                    {**MEMORY_WARNING, "value": "80"},
                    {**MEMORY_WARNING, "value": float("nan")},
                    "memory",
                )
            ],
            [],
        ),
    ],
    ids=["nobody", "no-alerts", "one", "same-host-highest", "two-hosts", "malformed"],
)
def test_resource_conditions_table(reports, expected):
    got = [(c.subject, c.level, c.value, c.agents) for c in resource_conditions(reports)]

    assert got == expected


def test_resource_conditions_message_names_the_host_threshold_and_key():
    [condition] = resource_conditions([report("a@h1", "h1", MEMORY_CRITICAL)])

    assert condition.message == "memory at 95.0% on h1 (>= 90%, resources.thresholds.critical)"
    assert (condition.host, condition.resource, condition.source) == ("h1", "memory", "resources.thresholds.critical")


def test_queue_conditions_warn_from_task_queue_length_up():
    bar = AlertThresholdsConfig(task_queue_length=5)

    conditions = queue_conditions({"backend": 5, "frontend": 4}, alert_thresholds=bar)

    assert [(c.subject, c.pool, c.level, c.value, c.threshold) for c in conditions] == [
        ("queue:backend", "backend", "warning", 5.0, 5.0)
    ]
    assert conditions[0].source == "external_api.performance_monitoring.alert_thresholds.task_queue_length"


def state(**values) -> PoolState:
    base = {
        "pool": "backend",
        "now": NOW,
        "instances": 1,
        "desired": 1,
        "concurrency": 2,
        "min_instances": 0,
        "max_instances": 4,
        "running": 2,
        "ready": 10,
        "delayed": 0,
    }
    return PoolState(**(base | values))


QUEUE = Condition(
    subject="queue:backend",
    resource="queue",
    level="warning",
    value=10,
    threshold=5,
    source="k",
    message="m",
    pool="backend",
)
MEMORY = Condition(
    subject="memory@h1", resource="memory", level="warning", value=80, threshold=75, source="k", message="m", host="h1"
)


@pytest.mark.parametrize(
    ("condition", "pool_state", "applies", "expected"),
    [
        (QUEUE, state(instances=0, desired=1), True, "no worker of pool backend is online (1 wanted)"),
        (
            QUEUE,
            state(instances=4, desired=4),
            True,
            "pool backend is at its max_instances (4): raise "
            "agents.backend.max_instances or agents.backend.concurrency (2)",
        ),
        (QUEUE, state(), False, "run `hive scale backend 2` or set scaling.auto_scale: true"),
        (QUEUE, state(desired=3), True, "the scaler is growing pool backend (1 online, 3 wanted, at most 4)"),
        (
            MEMORY,
            None,
            True,
            "lower the concurrency of backend, ios on h1, or give it more memory; its workers "
            "stop claiming above resources.allocation.memory_limit_percent (75%)",
        ),
        (
            Condition(**{**MEMORY.__dict__, "resource": "disk", "subject": "disk@h1"}),
            None,
            True,
            "free disk on h1: workspaces kept after their attempts",
        ),
    ],
    ids=["no-worker", "at-max", "scaling-not-applied", "scaler-growing", "memory", "disk"],
)
def test_recommend_table(condition, pool_state, applies, expected):
    pools = {"backend": pool_state} if pool_state else {}

    advice = recommend(
        condition, pools=pools, host_pools=["backend", "ios"], scaling_applies=applies, limit_percent=75.0
    )

    assert expected in advice


def test_webhook_body_is_slack_text_with_the_alert_fields():
    raised = {
        "id": 7,
        "type": "alert.raised",
        "pool": None,
        "at": "2026-01-01T00:00:00+00:00",
        "payload": {
            "alert": 3,
            "subject": "memory@h1",
            "level": "critical",
            "escalated_from": "warning",
            "message": "memory at 95.0% on h1 (>= 90%, resources.thresholds.critical)",
            "recommendation": "lower the concurrency",
        },
    }
    resolved = {**raised, "type": "alert.resolved", "payload": {**raised["payload"], "resolution": "back under"}}

    body = webhook_body(raised)

    assert body["text"] == (
        ":rotating_light: [critical] (was warning) memory at 95.0% on h1 (>= 90%, "
        "resources.thresholds.critical)\nrecommended: lower the concurrency"
    )
    assert body["event"] == "alert.raised" and body["event_id"] == 7
    assert body["alert"]["subject"] == "memory@h1" and body["alert"]["level"] == "critical"
    assert webhook_body(resolved)["text"] == ":white_check_mark: resolved: memory@h1: back under"


def test_backoff_doubles_with_jitter_up_to_a_cap():
    import random

    random.seed(3)
    delays = [backoff(n) for n in range(8)]

    assert 1.0 <= delays[0] <= 2.0 and 2.0 <= delays[1] <= 4.0 and 8.0 <= delays[3] <= 16.0
    assert all(30.0 <= d <= 60.0 for d in delays[5:])


# --- against the database -----------------------------------------------------------------------------------
@pytest.fixture
def monitored(settings, pools):
    configure(settings, external_api__performance_monitoring__alert_thresholds__task_queue_length=5)
    return pools


def test_alerts_evaluate_raises_once_per_episode_and_resolves_when_it_clears(monitored):
    heartbeat(monitored["backend"], "backend@host-1", MEMORY_WARNING, memory_percent=80.0)

    first = alerts_evaluate()
    again = alerts_evaluate()  # still over: no second raise

    assert [(c.change, c.alert.subject) for c in first] == [("raised", "memory@host-1")]
    assert again == []
    alert = Alert.objects.get()
    assert (alert.level, alert.value, alert.threshold, alert.status) == ("warning", 80.0, 75.0, "active")
    [raised] = Event.objects.filter(type="alert.raised")
    assert raised.payload["subject"] == "memory@host-1" and raised.payload["source"] == "resources.thresholds.warning"
    assert raised.team_id is None  # about the shared fleet: every team sees it

    heartbeat(monitored["backend"], "backend@host-1", memory_percent=41.5)  # under again
    cleared = alerts_evaluate()

    assert [(c.change, c.alert.subject) for c in cleared] == [("resolved", "memory@host-1")]
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolution == "memory on host-1 at 41.5%, under its thresholds again"
    assert Event.objects.filter(type="alert.resolved").count() == 1
    assert alerts_evaluate() == []

    heartbeat(monitored["backend"], "backend@host-1", MEMORY_WARNING)  # a new episode: a new row
    assert [c.change for c in alerts_evaluate()] == ["raised"]
    assert Alert.objects.count() == 2 and Alert.objects.active().count() == 1


def test_alerts_evaluate_escalation_raises_again_and_a_lower_level_is_quiet(monitored):
    heartbeat(monitored["backend"], "backend@host-1", MEMORY_WARNING)
    alerts_evaluate()

    heartbeat(monitored["backend"], "backend@host-1", MEMORY_CRITICAL)
    escalated = alerts_evaluate()
    heartbeat(monitored["backend"], "backend@host-1", MEMORY_WARNING)
    calmer = alerts_evaluate()

    assert [c.change for c in escalated] == ["escalated"] and calmer == []
    alert = Alert.objects.get()
    assert (alert.level, alert.peak, alert.value) == ("warning", 95.0, 80.0)
    raised = list(Event.objects.filter(type="alert.raised").order_by("id"))
    assert [e.payload["level"] for e in raised] == ["warning", "critical"]
    assert raised[1].payload["escalated_from"] == "warning"


def test_alerts_evaluate_offline_agent_resolves_its_hosts_alert(monitored):
    agent = heartbeat(monitored["backend"], "backend@host-1", MEMORY_WARNING)
    alerts_evaluate()

    Agent.objects.filter(id=agent.id).update(status=Agent.Status.OFFLINE)
    [change] = alerts_evaluate()

    assert change.change == "resolved" and change.alert.resolution == "no live agent on host-1 reports memory"


def test_alerts_evaluate_queue_over_task_queue_length_raises_a_warning_with_advice(monitored):
    queue(monitored["ios"], 5)
    queue(monitored["frontend"], 4)

    [change] = alerts_evaluate()

    alert = change.alert
    assert (alert.subject, alert.pool.name, alert.level, alert.value, alert.threshold) == (
        "queue:ios",
        "ios",
        "warning",
        5.0,
        5.0,
    )
    assert alert.message.startswith("pool ios has 5 tasks queued (>= 5,")
    assert "no worker of pool ios is online" in alert.recommendation
    assert Event.objects.get(type="alert.raised").pool == monitored["ios"]

    Task.objects.filter(pool=monitored["ios"]).update(status=Task.Status.SUCCEEDED)
    [cleared] = alerts_evaluate()
    assert cleared.alert.resolution == "pool ios has 0 tasks queued (< 5)"


def test_alerts_evaluate_without_optimization_carries_no_recommendation(settings, monitored):
    configure(settings, external_api__performance_monitoring__optimization_enabled=False)
    queue(monitored["ios"], 6)

    [change] = alerts_evaluate()

    assert change.alert.recommendation == ""
    assert Event.objects.get(type="alert.raised").payload["recommendation"] == ""


def test_one_active_alert_per_subject_is_kept_by_the_database(monitored):
    fields = {
        "subject": "memory@h1",
        "resource": "memory",
        "level": "warning",
        "value": 80,
        "peak": 80,
        "threshold": 75,
        "source": "k",
        "message": "m",
    }
    Alert.objects.create(**fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(**fields)
    Alert.objects.update(resolved_at=timezone.now())
    Alert.objects.create(**fields)  # a new episode once the first is resolved
    assert Alert.objects.count() == 2


def test_monitoring_tick_records_pool_samples_and_prunes_them_after_a_day(monitored):
    queue(monitored["backend"], 2)
    old = PoolSample.objects.create(
        pool=monitored["backend"],
        at=timezone.now() - timedelta(days=1, seconds=1),
        desired=1,
        online=0,
        queued=0,
        running=0,
    )

    round_ = monitoring_tick()

    assert round_.ran and round_.samples == 4 and round_.pruned == 1
    assert not PoolSample.objects.filter(id=old.id).exists()
    sample = PoolSample.objects.get(pool=monitored["backend"])
    assert (sample.desired, sample.online, sample.queued, sample.running) == (1, 0, 2, 0)


def test_monitoring_tick_when_another_process_holds_the_lease_does_nothing(monitored):
    lease_acquire(name="monitoring", holder="elsewhere:1", ttl=60, now=timezone.now())
    queue(monitored["ios"], 9)

    round_ = monitoring_tick()

    assert not round_.ran and PoolSample.objects.count() == 0 and Alert.objects.count() == 0


def test_monitoring_tick_disabled_samples_nothing_and_resolves_active_alerts(settings, monitored):
    queue(monitored["ios"], 9)
    monitoring_tick()
    assert Alert.objects.active().count() == 1
    configure(settings, external_api__performance_monitoring__enabled=False)
    from coordination.models import Lease

    Lease.objects.all().delete()  # the next round of another beat

    round_ = monitoring_tick()

    assert [c.change for c in round_.changes] == ["resolved"]
    alert = Alert.objects.get()
    assert alert.resolution == "performance monitoring is off (external_api.performance_monitoring.enabled)"
    assert PoolSample.objects.count() == 4  # only the first round's
    assert monitoring_tick().changes == []


def test_alert_notify_without_a_webhook_url_skips(settings, monitored):
    configure(settings, monitoring__alerts__enabled=True, monitoring__alerts__webhook_url=None)
    queue(monitored["ios"], 9)
    [change] = alerts_evaluate()

    assert alert_notify(event_id=change.event_id).startswith("skipped: monitoring.alerts is off")


class Consumer:
    """Stands in for the worker's Celery consumer: records the queues it is told to leave or rejoin."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def cancel_task_queue(self, queue: str) -> None:
        self.calls.append(("cancel", queue))

    def add_task_queue(self, queue: str) -> None:
        self.calls.append(("add", queue))


@pytest.mark.parametrize(
    ("resource", "changes", "level", "source"),
    [
        (
            "memory",
            {"resources__thresholds__warning": 0.0, "resources__thresholds__critical": 100.0},
            "warning",
            "resources.thresholds.warning",
        ),
        (
            "memory",
            {"resources__thresholds__warning": 0.0, "resources__thresholds__critical": 0.0},
            "critical",
            "resources.thresholds.critical",
        ),
        (
            "memory",
            {
                "resources__thresholds__warning": 100.0,
                "resources__thresholds__critical": 100.0,
                "external_api__performance_monitoring__alert_thresholds__memory_usage": 0.0,
            },
            "warning",
            "external_api.performance_monitoring.alert_thresholds.memory_usage",
        ),
        (
            "cpu",
            {
                "resources__thresholds__warning": 100.0,
                "resources__thresholds__critical": 100.0,
                "external_api__performance_monitoring__alert_thresholds__cpu_usage": 0.0,
            },
            "warning",
            "external_api.performance_monitoring.alert_thresholds.cpu_usage",
        ),
    ],
    ids=["warning", "critical", "memory-usage", "cpu-usage"],
)
def test_heartbeat_reports_alert_levels_under_the_workers_thresholds(settings, pools, resource, changes, level, source):
    only = {f"resources__monitoring__{name}": name == resource for name in ("cpu", "memory", "disk", "network")}
    configure(settings, **only, **changes)
    beat = heartbeat_of(pools["ios"])
    # a sample at half: the machine's own load (100% CPU on a busy one) would reach the critical 100
    beat.sampler = FixedSampler(ResourceSample(at=time.time(), **{f"{resource}_percent": 50.0}))

    report = beat.watch_resources()

    [reported] = report["alerts"]
    assert (reported["resource"], reported["level"], reported["source"]) == (resource, level, source)
    assert reported["value"] == report[f"{resource}_percent"]
    assert beat.consumer.calls == []  # an alert is not a limit: the worker goes on claiming


def test_heartbeat_under_every_threshold_reports_no_alert(settings, pools):
    configure(
        settings,
        resources__monitoring__cpu=False,
        resources__monitoring__disk=False,
        resources__thresholds__warning=100.0,
        resources__thresholds__critical=100.0,
        external_api__performance_monitoring__alert_thresholds__memory_usage=1.0,
    )

    assert heartbeat_of(pools["ios"]).watch_resources()["alerts"] == []


class FixedSampler:
    """A sampler whose every sample is the one given."""

    def __init__(self, sample: ResourceSample) -> None:
        self.sample = sample

    def latest(self) -> ResourceSample:
        return self.sample


def heartbeat_of(pool: AgentPool):
    """The heartbeat of a worker of `pool` (not started: the test calls its steps)."""
    from workers.agent import Heartbeat

    return Heartbeat(agent=Agent(name="ios@unit", pool=pool), consumer=Consumer(), interval=1.0)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(503, True), (429, True), (500, True), (400, False), (404, False), (302, False)],
)
def test_alert_notify_failure_says_whether_a_retry_can_help(monitored, status, retryable):
    from coordination.notify import DeliveryFailed
    from tests.webhook_receiver import WebhookReceiver

    queue(monitored["ios"], 9)
    [change] = alerts_evaluate()
    with WebhookReceiver(statuses=(status,)) as receiver:
        with pytest.raises(DeliveryFailed, match=f"answered {status}") as failed:
            alert_notify(event_id=change.event_id, url=receiver.url)
        assert failed.value.retryable is retryable
        assert alert_notify(event_id=change.event_id, url=receiver.url) == "sent"  # the next attempt
        [body] = receiver.bodies  # a redirect is not followed: nothing arrived elsewhere
    assert body["event"] == "alert.raised" and body["alert"]["subject"] == "queue:ios"
    assert receiver.url not in str(failed.value)  # a webhook URL is a secret: never in a message


def test_alert_notify_unreachable_receiver_is_retryable(monitored):
    from coordination.notify import DeliveryFailed
    from hive_project.launch import free_port

    queue(monitored["ios"], 9)
    [change] = alerts_evaluate()

    with pytest.raises(DeliveryFailed, match="could not be reached") as failed:
        alert_notify(event_id=change.event_id, url=f"http://127.0.0.1:{free_port()}/hook")
    assert failed.value.retryable


@pytest.mark.parametrize(("status", "retries"), [(503, 4), (400, 0)], ids=["retries-spent", "refused"])
def test_alert_notify_task_gives_up_and_logs_why(settings, monitored, caplog, status, retries):
    from tests.webhook_receiver import WebhookReceiver
    from workers.tasks import alert_notify as notify_task

    queue(monitored["ios"], 9)
    [change] = alerts_evaluate()
    with WebhookReceiver(statuses=(status,)) as receiver:
        configure(settings, monitoring__alerts__enabled=True, monitoring__alerts__webhook_url=receiver.url)

        outcome = notify_task.apply(args=(change.event_id,), retries=retries).get()

    assert (
        outcome == f"failed: the webhook answered {status} {'Service Unavailable' if status == 503 else 'Bad Request'}"
    )
    assert receiver.refused == 1 and receiver.bodies == []
    assert f"alert event {change.event_id} was not delivered to the alerts webhook" in caplog.text


def test_alerts_evaluate_writes_every_standing_alert_in_one_update(monitored):
    heartbeat(monitored["backend"], "backend@host-1", MEMORY_WARNING, memory_percent=80.0)
    heartbeat(monitored["frontend"], "frontend@host-2", MEMORY_WARNING, host="host-2", memory_percent=80.0)
    queue(monitored["ios"], 5)
    alerts_evaluate()
    heartbeat(monitored["backend"], "backend@host-1", {**MEMORY_WARNING, "value": 85.0}, memory_percent=85.0)
    heartbeat(
        monitored["frontend"], "frontend@host-2", {**MEMORY_WARNING, "value": 78.0}, host="host-2", memory_percent=78.0
    )
    queue(monitored["ios"], 2)

    with CaptureQueriesContext(connection) as queries:
        assert alerts_evaluate() == []  # the same three episodes go on: nothing announced

    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "coordination_alert"')]
    assert len(updates) == 1
    values = {a.subject: (a.value, a.peak) for a in Alert.objects.active()}
    assert values == {"memory@host-1": (85.0, 85.0), "memory@host-2": (78.0, 80.0), "queue:ios": (7.0, 7.0)}


def test_a_standing_alert_resolved_meanwhile_stays_resolved(monitored):
    heartbeat(monitored["backend"], "backend@host-1", MEMORY_WARNING, memory_percent=80.0)
    alerts_evaluate()
    read = Alert.objects.get()  # what a round read before another process resolved it
    Alert.objects.update(resolved_at=timezone.now(), resolution="by another round")
    read.value = 99.0

    _standing_update([read])

    alert = Alert.objects.get()
    assert (alert.status, alert.value, alert.resolution) == ("resolved", 80.0, "by another round")
