"""coordination.rows.row_insert stores what Model.save(force_insert=True) stores."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict

from coordination.models import Event, Task
from coordination.rows import row_insert
from coordination.services import task_submit


def stored(model, pk) -> dict:
    row = model.objects.get(pk=pk)
    return {k: v for k, v in model_to_dict(row).items() if k != "id"} | {"created_at": row.created_at is not None}


def test_row_insert_event_matches_save_and_sets_the_returned_id(pools):
    task = task_submit(capabilities=["python"], prompt="p")
    payload = {"nested": {"a": [1, 2.5, None, "é"]}, "flag": True}
    by_save = Event(type="x.y", task=task, pool=task.pool, team_id=task.team_id, payload=payload)
    by_save.save(force_insert=True)
    ours = Event(type="x.y", task=task, pool=task.pool, team_id=task.team_id, payload=payload)

    row_insert(ours)

    assert ours.id is not None and ours.id > by_save.id
    assert ours._state.adding is False
    assert stored(Event, ours.id) == stored(Event, by_save.id)
    assert Event.objects.get(id=ours.id).payload == payload


def test_row_insert_duplicate_key_raises_integrity_error_and_stores_nothing(pools):
    first = task_submit(capabilities=["python"], prompt="p", idempotency_key="k1")
    twin = Task.objects.get(id=first.id)
    twin.id = None
    twin.pk = Task._meta.pk.get_default()

    with pytest.raises(IntegrityError), transaction.atomic():
        row_insert(twin)

    assert Task.objects.filter(idempotency_key="k1").count() == 1
