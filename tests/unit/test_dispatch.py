"""coordination.dispatch: the message a worker receives is the one Celery's send_task would publish."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from coordination import dispatch
from coordination.dispatch import redis_client
from hive_project.launch import free_port
from tests.conftest import purge_broker

# differ between any two messages, whoever sends them
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "eta", "argsrepr"}


@pytest.fixture
def broker():
    purge_broker()
    yield redis_client()
    purge_broker()


@pytest.fixture
def send_task_calls(monkeypatch):
    calls: list[str] = []
    real = dispatch.app.send_task

    def counting(*args, **kwargs):
        calls.append(kwargs["queue"])
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatch.app, "send_task", counting)
    return calls


def messages(client, key: str) -> list[dict]:
    return [json.loads(raw) for raw in reversed(client.lrange(key, 0, -1))]  # oldest first


def without_ids(message: dict) -> dict:
    out = json.loads(json.dumps(message))
    for part in ("headers", "properties"):
        for name in PER_MESSAGE:
            out[part].pop(name, None)
    out.pop("body")
    return out


@pytest.mark.parametrize(("priority", "key_suffix"), [(0, ""), (3, ":3"), (7, ":6"), (9, ":9")])
def test_dispatch_second_message_is_pushed_directly_and_matches_send_tasks(
    broker, send_task_calls, priority, key_suffix
):
    queue = f"hive.dispatch-{uuid.uuid4().hex[:6]}"
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    assert dispatch.dispatch(task_id=first, queue=queue, priority=priority, timeout=30.0)
    assert dispatch.dispatch(task_id=second, queue=queue, priority=priority, timeout=30.0)

    assert send_task_calls == [queue]  # the first declared the queue through Celery; the second did not
    by_celery, direct = messages(broker, queue + key_suffix)
    assert without_ids(direct) == without_ids(by_celery)
    assert direct["properties"]["priority"] == priority
    assert direct["headers"]["id"].split(".")[0] == second
    assert direct["headers"]["root_id"] == direct["properties"]["correlation_id"] == direct["headers"]["id"]
    assert direct["headers"]["argsrepr"] == repr([second])
    assert direct["headers"]["timelimit"] == [30.0 + dispatch.HARD_LIMIT_MARGIN, None]
    args, kwargs, embed = json.loads(base64.b64decode(direct["body"]))
    assert (args, kwargs) == ([second], {})
    assert json.loads(base64.b64decode(by_celery["body"]))[1:] == [kwargs, embed]
    assert dispatch.task_ids_in_broker([queue]) == {first, second}


def test_dispatch_countdown_sets_the_eta_as_send_task_does(broker, send_task_calls):
    queue = f"hive.dispatch-{uuid.uuid4().hex[:6]}"
    for _ in range(2):
        assert dispatch.dispatch(task_id=str(uuid.uuid4()), queue=queue, priority=6, timeout=10.0, countdown=30.0)

    by_celery, direct = messages(broker, queue + ":6")
    assert len(send_task_calls) == 1
    assert direct["headers"]["eta"] is not None and by_celery["headers"]["eta"] is not None
    assert without_ids(direct) == without_ids(by_celery)


def test_dispatch_messages_from_one_template_each_carry_their_own_task(broker, send_task_calls):
    queue = f"hive.dispatch-{uuid.uuid4().hex[:6]}"
    ids = [str(uuid.uuid4()) for _ in range(4)]

    for task_id in ids:
        assert dispatch.dispatch(task_id=task_id, queue=queue, priority=6, timeout=45.0)

    by_celery, *direct = messages(broker, queue + ":6")
    assert send_task_calls == [queue]
    for task_id, message in zip(ids[1:], direct, strict=True):
        assert without_ids(message) == without_ids(by_celery)
        assert message["headers"]["id"].split(".")[0] == task_id
        assert message["headers"]["root_id"] == message["properties"]["correlation_id"] == message["headers"]["id"]
        assert message["headers"]["argsrepr"] == repr([task_id])
        assert json.loads(base64.b64decode(message["body"]))[0] == [task_id]
    assert len({m["properties"]["delivery_tag"] for m in direct}) == 3
    assert dispatch.task_ids_in_broker([queue]) == set(ids)


def celery_events_seen(broker, send) -> list[dict]:
    """The Celery events (the `celeryev` fanout exchange: PUBLISH on Redis) sent while `send` ran."""
    listener = broker.pubsub(ignore_subscribe_messages=True)
    listener.psubscribe("*celeryev*")
    try:
        listener.get_message(timeout=1)  # the subscription is in place
        send()
        seen = []
        while (message := listener.get_message(timeout=0.5)) is not None:
            envelope = json.loads(message["data"])
            seen.append(json.loads(base64.b64decode(envelope["body"])))
        return seen
    finally:
        listener.close()


def test_dispatch_sends_no_task_sent_event_while_they_are_off(broker, send_task_calls):
    queue = f"hive.dispatch-{uuid.uuid4().hex[:6]}"
    ids = [str(uuid.uuid4()) for _ in range(3)]

    seen = celery_events_seen(
        broker, lambda: [dispatch.dispatch(task_id=i, queue=queue, priority=6, timeout=30.0) for i in ids]
    )

    assert seen == []
    assert dispatch.task_ids_in_broker([queue]) == set(ids)


def test_dispatch_with_task_sent_events_on_lets_celery_send_them(broker, send_task_calls):
    from celery import current_app

    queue = f"hive.dispatch-{uuid.uuid4().hex[:6]}"
    ids = [str(uuid.uuid4()) for _ in range(3)]
    current_app.conf.task_send_sent_event = True
    try:
        seen = celery_events_seen(
            broker, lambda: [dispatch.dispatch(task_id=i, queue=queue, priority=6, timeout=30.0) for i in ids]
        )
    finally:
        current_app.conf.task_send_sent_event = False

    assert send_task_calls == [queue] * 3  # every message through Celery, which sends the event
    assert sorted(e["uuid"].split(".")[0] for e in seen if e.get("type") == "task-sent") == sorted(ids)
    assert dispatch.task_ids_in_broker([queue]) == set(ids)


def test_a_broker_that_is_down_costs_each_message_one_connection_try_not_seconds_of_retries(monkeypatch):
    """The submitter's task stays queued for the reconciler: no submit waits out kombu's retries."""
    import redis.connection

    port = free_port()  # nothing listens there
    real_connection = dispatch.app.connection_for_write
    monkeypatch.setattr(
        dispatch.app, "connection_for_write", lambda: real_connection(url=f"redis://127.0.0.1:{port}/0")
    )
    tries: list[int] = []
    real_connect = redis.connection.Connection._connect

    def counting(self):
        tries.append(port)
        return real_connect(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting)
    publisher = dispatch.RedisPublisher()
    publisher._declared.add("hive.down")

    for _ in range(3):
        with pytest.raises(Exception, match="onnect"):
            publisher.publish(task_id=str(uuid.uuid4()), queue="hive.down", priority=0, timeout=30.0, countdown=0)

    assert publisher._usable is None  # tried again by the next message, once the broker is back
    assert len(tries) == 3, tries  # one try per message (kombu's own retries made it three, over 6 s)
