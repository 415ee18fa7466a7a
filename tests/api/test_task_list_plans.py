"""The task list's SQL is compiled once per shape (external_api.api.task_list): every filter, the
caller's scope and the cursor must still select what Django's own QuerySet selects, with each
request's own values, and the JSON columns (passed through as text) must read as TaskSerializer's."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from coordination.models import Task
from external_api.api import task_list
from external_api.api.serializers import TaskSerializer

pytestmark = pytest.mark.django_db

URL = "/api/v1/tasks/"


def _expected(qs) -> list[dict]:
    rows = TaskSerializer(qs.select_related("pool", "agent", "team").order_by("-created_at"), many=True)
    return json.loads(JSONRenderer().render(rows.data))


def _submit(client, n: int, **extra) -> None:
    for i in range(n):
        body = {"capabilities": ["python"], "prompt": f"task {i}", **extra}
        assert client.post(URL, body, format="json").status_code == 201


def test_each_filter_answers_its_own_values_with_one_compiled_shape(personas):
    owner = personas["owner"].client
    _submit(owner, 3)
    _submit(owner, 2, priority="high", task_type="review")
    first = Task.objects.order_by("created_at").first()
    Task.objects.filter(id=first.id).update(status=Task.Status.SUCCEEDED, finished_at=timezone.now())
    task_list._plans.clear()
    for query, qs in [
        ("status=queued", Task.objects.filter(status="queued")),
        ("status=succeeded", Task.objects.filter(status="succeeded")),  # same shape, another value
        ("priority=high&type=review", Task.objects.filter(priority="high", task_type="review")),
        ("priority=low&type=review", Task.objects.none()),
        ("pool=nosuchpool", Task.objects.none()),
        ("search=TASK%201", Task.objects.filter(prompt__icontains="task 1")),
        ("status=queued&created_after=2000-01-01T00:00:00Z", Task.objects.filter(status="queued")),
        ("created_before=2000-01-01T00:00:00Z", Task.objects.none()),
    ]:
        listed = owner.get(f"{URL}?{query}").json()["results"]
        assert listed == _expected(qs), query
    shapes = {tuple(name for name, _ in shape[2]): plan for shape, plan in task_list._plans.items()}
    assert shapes[("status",)] is not None  # compiled once, answered both status values above
    assert shapes[("priority", "type")] is not None
    assert shapes[("search",)] is None  # a LIKE pattern: Django compiles it per request


def test_a_compiled_shape_answers_each_team_its_own_tasks(personas):
    _submit(personas["owner"].client, 2)
    _submit(personas["outsider"].client, 1)
    for name in ("owner", "outsider", "owner"):
        listed = personas[name].client.get(f"{URL}?status=queued").json()["results"]
        team = personas[name].team
        assert [t["id"] for t in listed] == [str(t.id) for t in Task.objects.filter(team=team).order_by("-created_at")]
        assert {t["team"] for t in listed} == {team.name}
    everyone = personas["staff"].client.get(f"{URL}?status=queued").json()["results"]
    assert everyone == _expected(Task.objects.all()) and len(everyone) == 3


def test_cursor_pages_walk_forward_and_back_as_django_does(personas):
    owner = personas["owner"].client
    _submit(owner, 5)
    expected = _expected(Task.objects.all())
    seen, url = [], f"{URL}?status=queued&limit=2"
    pages = []
    while url:
        body = owner.get(url).json()
        pages.append(body)
        seen += body["results"]
        url = body["next"]
    assert seen == expected and len(pages) == 3
    back = owner.get(pages[-1]["previous"]).json()
    assert back["results"] == pages[1]["results"]


def test_json_columns_read_as_the_serializer_reads_them(personas):
    owner = personas["owner"].client
    payload = {"b": [1, 2.5, None, True], "a": {"nested": "é ✓"}, "line": "x\u2028y"}
    body = {"capabilities": ["python"], "prompt": "p", "payload": payload}
    assert owner.post(URL, body, format="json").status_code == 201
    Task.objects.update(result={"answer": [1, "two", {"three": 3.0}]}, command=["echo", "hé"])
    response = owner.get(f"{URL}?status=queued")
    assert b"\\u2028" in response.content and "\u2028".encode() not in response.content  # escaped as DRF does
    (listed,) = response.json()["results"]
    assert listed == _expected(Task.objects.all())[0]
    assert listed["payload"] == payload and listed["result"] == {"answer": [1, "two", {"three": 3.0}]}
    indented = owner.get(f"{URL}?status=queued", HTTP_ACCEPT="application/json; indent=2")
    assert indented.content.startswith(b'{\n  "next"') and indented.json() == response.json()


def test_a_compiled_shape_runs_one_query(personas):
    owner = personas["owner"].client
    _submit(owner, 2)
    Task.objects.update(status=Task.Status.SUCCEEDED)  # finished: no ETA lookup
    assert owner.get(f"{URL}?status=succeeded").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert len(owner.get(f"{URL}?status=succeeded").json()["results"]) == 2
    assert len([q for q in queries.captured_queries if Task._meta.db_table in q["sql"]]) == 1


def test_a_valid_query_string_is_validated_once_and_each_caller_gets_its_own_copy(personas):
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from external_api.api import queries, strict

    def asked(path: str) -> Request:
        return Request(APIRequestFactory().get(path))

    strict._validated_queries.clear()
    first = strict.query(asked("/?status=queued&created_after=2026-01-02T03:04:05"), queries.TaskQuery)
    first["status"] = "changed by the caller"
    again = strict.query(asked("/?status=queued&created_after=2026-01-02T03:04:05"), queries.TaskQuery)
    assert again == {"status": "queued", "created_after": again["created_after"]}
    assert again["created_after"].isoformat() == "2026-01-02T03:04:05+00:00" and len(strict._validated_queries) == 1
    for _ in range(2):  # refused every time, never remembered
        response = personas["owner"].client.get(f"{URL}?status=bogus")
        assert response.status_code == 400 and "status" in response.json()["fields"]
    assert len(strict._validated_queries) == 1
