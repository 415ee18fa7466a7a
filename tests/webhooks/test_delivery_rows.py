"""delivery_seen: a stored delivery with its task and pool, as the ORM's select_related read gives them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from coordination.models import Team
from coordination.services import task_submit
from external_api.delivery_rows import delivery_seen
from external_api.models import WebhookDelivery
from external_api.services import webhook_source_create

pytestmark = pytest.mark.django_db


def fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_delivery_seen_gives_the_rows_the_orm_gives_in_one_statement(pools):
    team = Team.objects.create(name="acme")
    source = webhook_source_create(kind="github", slug="web", team=team, secret="s")
    task = task_submit(capabilities=["python"], prompt="fix the build", team=team, payload={"issue": 7})
    WebhookDelivery.objects.create(
        source=source, delivery_id="d-1", event="issue_comment", outcome="accepted", task=task
    )
    WebhookDelivery.objects.create(source=source, delivery_id="d-2", event="ping", outcome="ping", detail="zen")

    with CaptureQueriesContext(connection) as queries:
        seen = delivery_seen(source_id=source.id, delivery_id="d-1")
        taskless = delivery_seen(source_id=source.id, delivery_id="d-2")
        never = delivery_seen(source_id=source.id, delivery_id="d-3")
        other_source = delivery_seen(source_id=source.id + 1, delivery_id="d-1")
    assert len(queries) == 4

    orm = WebhookDelivery.objects.select_related("task__pool").get(source=source, delivery_id="d-1")
    assert fields(seen) == fields(orm)
    assert fields(seen.task) == fields(orm.task) and seen.task.payload == {"issue": 7}
    assert fields(seen.task.pool) == fields(orm.task.pool) and seen.task.pool.name == "backend"
    assert seen._state.adding is False and seen.task._state.db == connection.alias
    assert (taskless.outcome, taskless.detail, taskless.task) == ("ping", "zen", None)
    assert never is None and other_source is None
