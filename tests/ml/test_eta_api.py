"""The task list's `eta`: each queued or running task's expected completion, or why there is none."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from coordination.services import task_submit
from ml import registry
from ml.services import ml_train
from tests.ml.synthetic import CAPABILITY, build_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_user("sam", password="pw", is_staff=True))
    return client


def listed(staff) -> dict[str, dict | None]:
    response = staff.get("/api/v1/tasks/?limit=50")
    assert response.status_code == 200
    return {task["id"]: task["eta"] for task in response.json()["results"]}


def test_task_list_eta_says_no_model_yet_then_gives_the_models_prediction(staff, ml_pools, world):
    queued = task_submit(capabilities=[CAPABILITY], prompt="wait for me", task_type="build", complexity=5)

    before = listed(staff)[str(queued.id)]

    assert before["seconds"] is None and before["model_version"] == ""
    assert before["reason"].startswith("no active duration model yet")

    build_history(world, n=800, pools=ml_pools, seed=1)
    ml_train(kinds=["duration"])
    registry.forget()  # as once ACTIVE_CHECK_SECONDS passed since this process last asked
    etas = listed(staff)

    after = etas[str(queued.id)]
    assert after["model_version"] == "duration v1" and after["reason"] == ""
    assert 0 < after["seconds"] <= after["p90_seconds"] and after["at"]
    others = [eta for task_id, eta in etas.items() if task_id != str(queued.id)]
    assert len(others) == 49 and set(map(type, others)) == {type(None)}  # finished history: no ETA
    alone = staff.get(f"/api/v1/tasks/{queued.id}/").json()["eta"]  # one task alone: the same prediction
    assert {k: v for k, v in alone.items() if k != "at"} == {k: v for k, v in after.items() if k != "at"}
