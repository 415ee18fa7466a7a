"""The task list reads plain rows (serializers.task_rows_data) and must answer exactly what
TaskSerializer answers for the same tasks; API keys are remembered per process for a bounded time."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from coordination.models import Task
from external_api import keycache
from external_api.api.serializers import TaskSerializer
from external_api.models import ApiKey

pytestmark = pytest.mark.django_db

URL = "/api/v1/tasks/"


def _tasks_of_every_shape(client) -> None:
    for prompt in ("one", "two", "three"):
        assert client.post(URL, {"capabilities": ["python"], "prompt": prompt}, format="json").status_code == 201
    done, held = Task.objects.order_by("created_at")[:2]
    Task.objects.filter(id=done.id).update(
        status=Task.Status.SUCCEEDED,
        finished_at=timezone.now(),
        result={"answer": [1, 2.5, "é"]},
        hold_reason="spent",  # a task that left the queue is not held: the list says ""
        pool=None,
    )
    Task.objects.filter(id=held.id).update(hold_reason="the team's daily budget is spent")


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_list_answers_what_task_serializer_answers(personas, settings, zone):
    settings.TIME_ZONE = zone
    client = personas["owner"].client
    _tasks_of_every_shape(client)
    listed = client.get(URL).json()["results"]
    expected = TaskSerializer(Task.objects.select_related("pool", "agent", "team").order_by("-created_at"), many=True)
    assert listed == json.loads(JSONRenderer().render(expected.data))
    assert {t["status"] for t in listed} == {"queued", "succeeded"} and any(t["pool"] is None for t in listed)
    assert listed[0]["eta"]["reason"] and listed[-1]["eta"] is None  # queued: why no ETA; finished: none


def test_a_key_read_recently_answers_without_a_query(personas):
    client = personas["reader"].client
    assert client.get(URL).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL).status_code == 200
    assert not [q for q in queries.captured_queries if ApiKey._meta.db_table in q["sql"]]


def test_a_key_revoked_in_this_process_is_refused_at_once(personas):
    from external_api.services import apikey_revoke

    client = personas["reader"].client
    assert client.get(URL).status_code == 200
    apikey_revoke(prefix=ApiKey.objects.get(name="read key").prefix)
    assert client.get(URL).status_code == 401


def test_a_remembered_key_that_expires_is_refused(personas):
    client = personas["reader"].client
    key = ApiKey.objects.get(name="read key")
    key.expires_at = timezone.now() + timezone.timedelta(seconds=30)
    key.save(update_fields=["expires_at"])
    assert client.get(URL).status_code == 200
    known = next(k for _, k in keycache._known.values() if k.id == key.id)
    known.expires_at = timezone.now() - timezone.timedelta(seconds=1)  # the clock passed it
    assert client.get(URL).status_code == 401


def test_task_serializers_share_their_fields_but_each_answers_its_own_etas(personas):
    client = personas["owner"].client
    assert client.post(URL, {"capabilities": ["python"], "prompt": "one"}, format="json").status_code == 201
    task = Task.objects.select_related("pool", "agent", "team").get()
    first, second = TaskSerializer(), TaskSerializer()
    first.etas, second.etas = {str(task.id): {"seconds": 1.0}}, {str(task.id): {"seconds": 2.0}}
    assert first.to_representation(task)["eta"] == {"seconds": 1.0}
    assert second.to_representation(task)["eta"] == {"seconds": 2.0}
    assert TaskSerializer(task).data["eta"]["reason"]  # a lone task computes its own (no model: why)


def test_a_keys_submission_takes_the_team_read_with_the_key(personas):
    from coordination.models import Team

    client = personas["writer"].client
    assert client.get(URL).status_code == 200  # the key (and its team) read and remembered
    with CaptureQueriesContext(connection) as queries:
        created = client.post(URL, {"capabilities": ["python"], "prompt": "p"}, format="json")
    assert created.status_code == 201 and created.json()["team"] == "acme"
    assert Task.objects.get(id=created.json()["id"]).team == Team.objects.get(name="acme")
    by_id = f'WHERE "{Team._meta.db_table}"."id" ='  # the view's own read of the caller's team
    assert not [q for q in queries.captured_queries if by_id in q["sql"]]
