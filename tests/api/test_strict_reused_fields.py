"""A body serializer with `reuse_fields` (external_api.api.strict) copies its fields once per thread
and class: every later instance must still validate its own body alone, with its own errors."""

from __future__ import annotations

import threading

from external_api.api.serializers import TaskCreateSerializer


def test_one_thread_reuses_the_fields_and_points_them_at_the_current_instance():
    first = TaskCreateSerializer(data={"capabilities": ["python"]})
    second = TaskCreateSerializer(data={"capabilities": ["python"]})
    assert first.fields["prompt"] is second.fields["prompt"]
    assert second.fields["prompt"].parent is second
    assert second.fields["command"].child.parent is second.fields["command"]


def test_another_thread_gets_fields_of_its_own():
    mine = TaskCreateSerializer(data={}).fields["prompt"]
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(TaskCreateSerializer(data={}).fields["prompt"]))
    worker.start()
    worker.join()
    assert theirs and theirs[0] is not mine


def test_a_refused_body_leaves_nothing_behind_for_the_next_one():
    unknown = TaskCreateSerializer(data={"capabilities": ["python"], "colour": "red"})
    assert not unknown.is_valid()
    assert set(unknown.errors) == {"colour"}
    bad = TaskCreateSerializer(data={"capabilities": [], "prompt": 7, "priority": "urgent"})
    assert not bad.is_valid()
    assert set(bad.errors) == {"capabilities", "prompt", "priority"}

    good = TaskCreateSerializer(data={"capabilities": ["python"], "command": ["echo", "hi"], "timeout": 30})
    assert good.is_valid(), good.errors
    assert good.validated_data["command"] == ["echo", "hi"]
    assert good.validated_data["payload"] == {}
    assert good.validated_data["priority"] == "normal"

    again = TaskCreateSerializer(data={"capabilities": ["python"], "payload": {"a": 1}})
    assert again.is_valid(), again.errors
    assert again.validated_data["payload"] == {"a": 1}
    assert again.validated_data["command"] is None
    assert good.validated_data["payload"] == {}  # the default dict is each body's own
