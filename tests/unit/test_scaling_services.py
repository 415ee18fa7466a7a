"""Scaling decisions against the database: what beat records, applies or only recommends; the lease;
manual targets; the gauges on /metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent, AgentPool
from coordination.errors import Invalid, NotFound
from coordination.models import Event, Lease, ScalingDecision, Task
from coordination.scaling.services import scaling_evaluate, scaling_set
from coordination.services import task_submit
from workers.tasks import scale_pools


def configure(settings, *, auto_scale: bool = True, fleet_floor: int = 0, cooldown_minutes: float = 3.0) -> None:
    """The suite's configuration with scaling keys changed (the default fleet floor is 5 instances)."""
    config = settings.HIVE_CONFIG
    down = config.scaling.strategies.scale_down.model_copy(update={"min_instances": fleet_floor})
    strategies = config.scaling.strategies.model_copy(update={"scale_down": down})
    scaling = config.scaling.model_copy(
        update={"strategies": strategies, "auto_scale": auto_scale, "cooldown_minutes": cooldown_minutes}
    )
    multi = config.multi_agent.model_copy(update={"min_agents": 0})
    settings.HIVE_CONFIG = config.model_copy(update={"scaling": scaling, "multi_agent": multi})


@pytest.fixture
def scaling(settings, pools):
    configure(settings)
    return pools


def online(pool: AgentPool, name: str = "backend@test") -> Agent:
    return Agent.objects.create(name=name, pool=pool, status=Agent.Status.ONLINE, last_heartbeat=timezone.now())


def submit(n: int) -> list[Task]:
    return [task_submit(capabilities=["python"], command=["true"]) for _ in range(n)]


def desired(name: str) -> int:
    return AgentPool.objects.get(name=name).desired_instances


def test_evaluate_backlog_scales_up_and_records_decision(scaling):
    online(scaling["backend"])
    submit(5)

    decisions = scaling_evaluate(actuator="local")

    backend = next(d for d in decisions if d.pool.name == "backend")
    assert (backend.previous, backend.desired, backend.applied, backend.actuator) == (1, 2, True, "local")
    assert "backlog of 4: 1 -> 2" in backend.reason
    assert backend.inputs["ready"] == 5 and backend.inputs["instances"] == 1
    assert desired("backend") == 2
    event = Event.objects.get(type="pool.scaled", pool=scaling["backend"])
    assert event.payload | {"decision": 0} == {
        "decision": 0,
        "previous": 1,
        "desired": 2,
        "reason": backend.reason,
        "actuator": "local",
        "applied": True,
    }


def test_evaluate_idle_pools_go_to_zero(scaling):
    decisions = {d.pool.name: d for d in scaling_evaluate()}

    assert {name: d.desired for name, d in decisions.items()} == dict.fromkeys(
        ["backend", "frontend", "infrastructure", "ios"], 0
    )
    assert all(desired(name) == 0 for name in decisions)


def test_evaluate_default_fleet_floor_holds_back_scale_down(settings, pools):
    # The suite's configuration keeps scaling.strategies.scale_down.min_instances at 5: the four
    # idle pools (one instance each) may not shrink below it in all.
    assert scaling_evaluate() == []
    assert all(pool.desired_instances == 1 for pool in AgentPool.objects.all())


def test_evaluate_counts_ready_and_delayed_apart(scaling):
    online(scaling["backend"])
    later = submit(3)
    Task.objects.filter(id__in=[t.id for t in later[:2]]).update(available_at=timezone.now() + timedelta(minutes=5))

    decision = next(d for d in scaling_evaluate() if d.pool.name == "backend")

    assert (decision.inputs["ready"], decision.inputs["delayed"]) == (1, 2)


def test_evaluate_without_auto_scale_only_recommends_once(settings, pools):
    configure(settings, auto_scale=False)
    online(pools["backend"])
    submit(5)
    now = timezone.now()

    first = scaling_evaluate(now=now)
    again = scaling_evaluate(now=now + timedelta(seconds=10))

    recommended = next(d for d in first if d.pool.name == "backend")
    assert (recommended.previous, recommended.desired, recommended.applied) == (1, 2, False)
    assert desired("backend") == 1  # recorded, not applied
    assert again == []  # the same recommendation stands
    assert ScalingDecision.objects.filter(pool=pools["backend"]).count() == 1


def test_evaluate_scale_down_waits_out_cooldown_after_last_decision(scaling):
    agent = online(scaling["backend"])
    tasks = submit(5)
    start = timezone.now()
    scaling_evaluate(now=start)
    Task.objects.filter(id__in=[t.id for t in tasks]).update(status=Task.Status.SUCCEEDED)

    def backend_after(seconds: float) -> list[ScalingDecision]:
        Agent.objects.filter(id=agent.id).update(last_heartbeat=start + timedelta(seconds=seconds))
        return [d for d in scaling_evaluate(now=start + timedelta(seconds=seconds)) if d.pool.name == "backend"]

    assert backend_after(60) == []
    assert desired("backend") == 2
    [down] = backend_after(181)
    assert (down.previous, down.desired) == (2, 0)
    assert down.reason.startswith("idle")


def test_evaluate_lease_held_elsewhere_does_nothing(scaling):
    now = timezone.now()
    Lease.objects.create(name="scaling", holder="otherhost:4242", expires_at=now + timedelta(seconds=4))

    assert scaling_evaluate(now=now) == []
    assert not ScalingDecision.objects.exists()
    assert len(scaling_evaluate(now=now + timedelta(seconds=5))) == 4  # expired: this process takes it


def test_evaluate_manual_target_set_meanwhile_wins(scaling):
    online(scaling["backend"])
    submit(5)

    def operator_acts(pool: AgentPool, queued) -> None:
        if pool.name == "backend":
            scaling_set(pool="backend", desired=0, reason="maintenance")

    decisions = scaling_evaluate(predict_work=operator_acts)

    assert "backend" not in {d.pool.name for d in decisions}
    assert desired("backend") == 0
    assert list(ScalingDecision.objects.filter(pool=scaling["backend"]).values_list("actuator", flat=True)) == [
        "manual"
    ]


def test_evaluate_failing_prediction_hook_decides_without_it(scaling, caplog):
    online(scaling["backend"])
    submit(5)

    def broken(pool, queued):
        raise RuntimeError("model file missing")

    decision = next(d for d in scaling_evaluate(predict_work=broken) if d.pool.name == "backend")

    assert decision.desired == 2 and decision.inputs["predicted_work_seconds"] is None
    assert "scaling hook" in caplog.text and "model file missing" in caplog.text


def test_evaluate_prediction_of_short_work_holds(scaling):
    online(scaling["backend"])
    submit(5)

    decisions = scaling_evaluate(predict_work=lambda pool, queued: 0.5 * queued.count())

    assert "backend" not in {d.pool.name for d in decisions}
    assert desired("backend") == 1


def test_evaluate_disabled_does_nothing(settings, scaling):
    settings.HIVE_CONFIG = settings.HIVE_CONFIG.model_copy(
        update={"scaling": settings.HIVE_CONFIG.scaling.model_copy(update={"enabled": False})}
    )

    assert scaling_evaluate() == []
    assert not Lease.objects.exists()


def test_scaling_set_records_manual_decision(scaling):
    decision = scaling_set(pool="backend", desired=2, reason="release day")

    assert (decision.previous, decision.desired, decision.actuator, decision.applied) == (1, 2, "manual", True)
    assert decision.reason == "manual target 2: release day"
    assert desired("backend") == 2
    assert Event.objects.filter(type="pool.scaled", payload__actuator="manual").count() == 1


@pytest.mark.parametrize(
    ("pool", "value", "error", "message"),
    [
        ("backend", 3, Invalid, "desired = 3: expected 0..2 for pool backend (its min_instances..max_instances)"),
        ("backend", -1, Invalid, "desired = -1: expected 0..2"),
        ("backend", True, Invalid, "desired = True: expected a whole number of instances"),
        ("backend", "2", Invalid, "desired = '2': expected a whole number of instances"),
        ("nosuch", 1, NotFound, "no pool 'nosuch'"),
    ],
)
def test_scaling_set_bad_input_changes_nothing(scaling, pool, value, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        scaling_set(pool=pool, desired=value)

    assert desired("backend") == 1
    assert not ScalingDecision.objects.exists() and not Event.objects.filter(type="pool.scaled").exists()


def test_scaling_set_disabled_pool_refused(scaling):
    AgentPool.objects.filter(name="ios").update(enabled=False)

    with pytest.raises(Invalid, match="pool 'ios' is disabled"):
        scaling_set(pool="ios", desired=1)


def test_scaling_set_with_scaling_disabled_is_refused_and_changes_nothing(settings, scaling):
    settings.HIVE_CONFIG = settings.HIVE_CONFIG.model_copy(
        update={"scaling": settings.HIVE_CONFIG.scaling.model_copy(update={"enabled": False})}
    )

    with pytest.raises(Invalid, match=r"scaling is disabled \(scaling.enabled: false\)") as refused:
        scaling_set(pool="backend", desired=2)

    assert refused.value.code == "scaling_disabled"
    assert desired("backend") == 1 and not ScalingDecision.objects.exists()


def test_pool_sync_keeps_a_pool_the_scaler_put_to_zero_at_zero(settings, scaling):
    from coordination.fleet import pool_sync

    AgentPool.objects.filter(name="ios").update(desired_instances=0)  # min_instances 0 in the suite's config
    AgentPool.objects.filter(name="backend").update(desired_instances=2)

    pool_sync(config=settings.HIVE_CONFIG)  # as every worker does when it starts

    assert (desired("ios"), desired("backend")) == (0, 2)


def test_pool_sync_with_scaling_disabled_sets_every_pool_to_its_configured_size(settings, scaling):
    from coordination.fleet import pool_sync

    AgentPool.objects.filter(name="ios").update(desired_instances=0)
    AgentPool.objects.filter(name="backend").update(desired_instances=2)
    config = settings.HIVE_CONFIG
    config = config.model_copy(update={"scaling": config.scaling.model_copy(update={"enabled": False})})

    pool_sync(config=config)

    assert (desired("ios"), desired("backend")) == (1, 1)  # max(1, min_instances 0)


def test_scale_beat_task_runs_on_control_queue(settings, scaling):
    online(scaling["backend"])
    submit(5)

    result = scale_pools()

    assert {"pool": "backend", "previous": 1, "desired": 2, "applied": True} in result
    assert scale_pools.name == "hive.scale"
    entry = settings.CELERY_BEAT_SCHEDULE["scale"]
    assert entry["task"] == "hive.scale"
    assert entry["options"] == {"queue": "hive.control", "expires": settings.HIVE_CONFIG.scaling.interval_seconds}


def test_metrics_show_desired_and_online_instances(client, scaling):
    online(scaling["backend"])
    scaling_set(pool="backend", desired=2)

    body = client.get("/metrics").content.decode()

    assert 'hive_pool_desired_instances{pool="backend"} 2.0' in body
    assert 'hive_pool_instances{pool="backend"} 1.0' in body
    assert 'hive_pool_instances{pool="ios"} 0.0' in body
