"""The admin console's model registry and routing decisions, driven as a logged-in staff user."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from coordination.models import RoutingDecision, Task
from coordination.services import task_cancel, task_submit
from ml import registry
from ml.admin import eta_text
from ml.models import ModelVersion
from ml.services import ml_train
from tests.ml.conftest import with_config
from tests.ml.synthetic import CAPABILITY, World, build_history

pytestmark = pytest.mark.django_db

MODELS = "/admin/ml/modelversion/"
DECISIONS = "/admin/coordination/routingdecision/"


@pytest.fixture
def staff(client):
    User.objects.create_superuser("root", password="admin password 1")
    client.login(username="root", password="admin password 1")
    return client


@pytest.fixture
def two_versions(ml_pools, world) -> tuple[ModelVersion, ModelVersion]:
    """duration v1, then v2 trained after the fast pool got slow, which replaced it."""
    build_history(world, n=600, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    build_history(World(speed={"fast": 4.0, "slow": 0.3}, types=world.types), n=400, pools=ml_pools, seed=6)
    ml_train(kinds=["duration"])
    v1, v2 = ModelVersion.objects.filter(kind="duration").order_by("version")
    assert (v1.active, v2.active) == (False, True)
    return v1, v2


def page(response) -> str:
    return html.unescape(response.content.decode())


def activate(staff, row: ModelVersion) -> str:
    return page(staff.post(MODELS, {"action": "activate", "_selected_action": [str(row.id)]}, follow=True))


def test_model_list_shows_each_version_with_its_metric_beside_the_baseline_and_why(staff, two_versions):
    v1, v2 = two_versions

    text = page(staff.get(MODELS))

    for row in (v1, v2):
        assert f"mae_p50 {row.metrics['mae_p50']:.4g} vs {row.baseline_metrics['mae_p50']:.4g}" in text
        assert row.promotion in text
        assert f">{row.samples}<" in text
    assert "beats duration v1" in v2.promotion
    assert "Activate this version" in text
    assert staff.get(f"{MODELS}add/").status_code == 403
    assert 'name="_save"' not in page(staff.get(f"{MODELS}{v1.id}/change/"))  # read only


def test_activate_action_rolls_back_to_an_earlier_version(staff, two_versions):
    v1, v2 = two_versions

    text = activate(staff, v1)

    assert "Duration v1 is now the active duration model" in text  # the admin capitalises messages
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.active, v2.active) == (True, False)
    assert "activated in the admin by root" in v1.promotion


def test_activate_action_refuses_a_version_whose_artifact_fails_its_checksum(staff, two_versions):
    v1, _v2 = two_versions
    Path(v1.artifact).write_bytes(Path(v1.artifact).read_bytes() + b"tampered")

    text = activate(staff, v1)

    assert f"Not activated: duration v1: artifact {v1.artifact} does not match its checksum (refused)" in text
    assert list(ModelVersion.objects.filter(active=True).values_list("version", flat=True)) == [2]


def test_decision_list_shows_strategy_pool_confidence_fallback_and_outcome(staff, ml_pools, settings):
    with_config(settings, multi_agent={"load_balancing_strategy": "predictive"})
    routed = task_submit(capabilities=[CAPABILITY], prompt="no model yet", task_type="build")
    with_config(settings, multi_agent={"load_balancing_strategy": "round_robin"})
    cancelled = task_submit(capabilities=[CAPABILITY], prompt="cancel me")
    task_cancel(task=cancelled)

    text = page(staff.get(DECISIONS))

    assert str(routed.id)[:8] in text and str(cancelled.id)[:8] in text
    assert "predictive" in text and "no_model" in text and "round_robin" in text
    assert "open" in text and "closed without a verdict (cancelled)" in text
    assert "By strategy" in text and "By fallback" in text
    only_fallbacks = page(staff.get(f"{DECISIONS}?fallback__exact=no_model"))
    assert str(routed.id)[:8] in only_fallbacks and str(cancelled.id)[:8] not in only_fallbacks
    assert str(cancelled.id)[:8] not in page(staff.get(f"{DECISIONS}?strategy__exact=predictive"))


def test_task_page_shows_the_decision_that_placed_it(staff, ml_pools, settings):
    with_config(settings, multi_agent={"load_balancing_strategy": "predictive"})
    task = task_submit(capabilities=[CAPABILITY], prompt="where did it go", task_type="build")
    decision = RoutingDecision.objects.get(task=task)

    text = page(staff.get(f"/admin/coordination/task/{task.id}/change/"))

    assert "Routing decision" in text
    assert decision.reason in text and "predictive" in text and "no_model" in text
    assert Task.objects.get(id=task.id).pool.name in text


def test_task_page_shows_a_queued_tasks_eta_or_why_there_is_none(staff, ml_pools, world):
    before = task_submit(capabilities=[CAPABILITY], prompt="before any model", task_type="build")
    assert "none: no active duration model yet" in page(staff.get(f"/admin/coordination/task/{before.id}/change/"))

    build_history(world, n=600, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    registry.forget()  # this process checked for models a moment ago
    queued = task_submit(capabilities=[CAPABILITY], prompt="after training", task_type="build", complexity=5)
    text = page(staff.get(f"/admin/coordination/task/{queued.id}/change/"))

    assert "ETA" in text and "(p90 " in text and "duration v1" in text
    task_cancel(task=queued)
    assert eta_text(Task.objects.get(id=queued.id)) == "-"  # a finished task has no ETA
    assert "duration v1" not in page(staff.get(f"/admin/coordination/task/{queued.id}/change/"))
