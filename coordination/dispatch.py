"""Sending a task's message to its pool's queue, and checking which tasks the broker holds.

The database is the truth; a message is only a nudge for a worker to claim. A failed send is
logged and left to the reconciler, which sends again any queued task the broker does not hold.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from typing import Any

import redis
from celery import current_app as app  # the hive's app: hive_project/__init__.py creates it first
from django.conf import settings
from kombu import serialization
from kombu.utils import json as kombu_json

log = logging.getLogger(__name__)

EXECUTE_TASK = "hive.execute_task"
HARD_LIMIT_MARGIN = 60.0  # the runner's own timeout fires first; Celery's hard limit is the backstop
TEMPLATES_MAX = 64  # message templates kept per process (one per task timeout in use)
_STAND_IN_TASK = "00000000-0000-0000-0000-stand-in-task"
_STAND_IN_TASK_JSON = json.dumps(_STAND_IN_TASK)
_STAND_IN_MESSAGE = f"{_STAND_IN_TASK}.message"


def dispatch(*, task_id: str, queue: str, priority: int, timeout: float, countdown: float = 0.0) -> bool:
    """Publish one execute_task message. True when the broker took it."""
    try:
        if _publisher.publish(task_id=task_id, queue=queue, priority=priority, timeout=timeout, countdown=countdown):
            return True
        app.send_task(
            EXECUTE_TASK,
            args=[task_id],
            queue=queue,
            routing_key=queue,
            priority=priority,
            countdown=countdown if countdown > 0 else None,
            # celery-types says int; Celery takes float seconds
            time_limit=timeout + HARD_LIMIT_MARGIN,  # type: ignore[arg-type]
            task_id=f"{task_id}.{uuid.uuid4().hex[:8]}",
        )
        return True
    except Exception as exc:  # broker down: the task stays queued in the database
        log.warning("could not send task %s to %s (%s); the reconciler will resend it", task_id, queue, exc)
        return False


class RedisPublisher:
    """Celery's message for execute_task, pushed onto the queue's Redis list with one LPUSH.

    `app.send_task` costs about fifteen times the LPUSH it ends in (routing options, a producer
    from the pool, a queue declaration, a new redis-py client per message). This builds the same
    message with Celery's own `create_task_message` and kombu's own envelope (JSON body in base64,
    the properties kombu's Redis transport adds, the list key of the priority step) and pushes it
    on one long-lived client. tests/unit/test_dispatch.py compares it field by field with what
    `send_task` publishes.

    A message without countdown is Celery's message built once per timeout with stand-in ids, each
    message putting in its own (`_from_template`): building it anew cost more than the LPUSH.

    It declines (returns False, and `send_task` publishes) when the broker is not Redis, inside a
    Celery task (send_task links the message to the running task: root and parent ids), while
    Celery's task-sent events are on (`task_send_sent_event`: send_task sends them), and for a
    queue's first message in this process (send_task declares the queue, as before).
    """

    def __init__(self) -> None:
        self._client: redis.Redis | None = None
        self._usable: bool | None = None
        self._declared: set[str] = set()
        self._lock = threading.Lock()
        self._sep = ":"
        self._connection: Any = None
        self._templates: dict[float, tuple[dict[str, Any], dict[str, Any], str]] = {}
        self._templates_pid = 0

    def publish(self, *, task_id: str, queue: str, priority: int, timeout: float, countdown: float) -> bool:
        if queue not in self._declared:
            self._declared.add(queue)  # the caller's send_task declares it
            return False
        client = self._redis()
        if client is None or app.current_worker_task is not None or app.conf.task_send_sent_event:
            return False  # send_task links a task's message to the running task, or sends task-sent
        message_id = f"{task_id}.{uuid.uuid4().hex[:8]}"
        if countdown > 0:
            headers, properties, body = self._built(message_id, task_id, timeout=timeout, countdown=countdown)
        else:
            headers, properties, body = self._from_template(message_id, task_id, timeout=timeout)
        step = max(s for s in settings.BROKER_PRIORITY_STEPS if s <= max(0, min(priority, 9)))
        envelope = {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                **properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": priority,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        client.lpush(f"{queue}{self._sep}{step}" if step else queue, kombu_json.dumps(envelope))
        return True

    def _built(
        self, message_id: str, task_id: str, *, timeout: float, countdown: float = 0.0
    ) -> tuple[dict[str, Any], dict[str, Any], str]:
        """Celery's headers, properties and JSON body of execute_task(task_id), built by Celery."""
        task = app.amqp.create_task_message(
            message_id,
            EXECUTE_TASK,
            [task_id],
            {},
            countdown=countdown if countdown > 0 else None,
            reply_to=app.thread_oid,
            time_limit=timeout + HARD_LIMIT_MARGIN,
            create_sent_event=False,  # publish() declines while task-sent events are on
            ignore_result=None,
        )
        content_type, encoding, body = serialization.dumps(task.body, serializer="json")
        if (content_type, encoding) != ("application/json", "utf-8"):
            raise ValueError(f"execute_task's body is {content_type} in {encoding}, not JSON")
        return task.headers, task.properties, body.decode() if isinstance(body, bytes) else body

    def _from_template(self, message_id: str, task_id: str, *, timeout: float) -> tuple[dict, dict, str]:
        """What `_built` returns for a message without countdown, at a fraction of its cost: Celery
        builds the message once per timeout (and process: `origin` names it), with stand-in ids
        that each message replaces by its own. Only the ids, the argsrepr and the reply-to (the
        sending thread's) differ between two such messages; tests/unit/test_dispatch.py compares
        the result with send_task's."""
        pid = os.getpid()
        if self._templates_pid != pid or len(self._templates) > TEMPLATES_MAX:
            self._templates, self._templates_pid = {}, pid
        template = self._templates.get(timeout)
        if template is None:
            template = self._templates[timeout] = self._built(_STAND_IN_MESSAGE, _STAND_IN_TASK, timeout=timeout)
        headers, properties, body = template
        return (
            {**headers, "id": message_id, "root_id": message_id, "argsrepr": repr([task_id])},
            {**properties, "correlation_id": message_id, "reply_to": app.thread_oid},
            body.replace(_STAND_IN_TASK_JSON, json.dumps(task_id), 1),
        )

    def _redis(self) -> redis.Redis | None:
        if self._usable is None:
            with self._lock:
                if self._usable is None:
                    self._connect()
        return self._client if self._usable else None

    def _connect(self) -> None:
        """The redis-py client of the broker's own connection pool (same server, database, options)."""
        connection = app.connection_for_write()
        if connection.transport.driver_type != "redis":
            connection.release()
            self._usable = False
            return
        # One try, not kombu's retries over broker_connection_timeout (about 6 s): a submit while
        # the broker is down costs one refused connection, and the task waits for the reconciler.
        try:
            connection.ensure_connection(max_retries=0)
        except Exception:
            connection.release()
            raise
        channel: Any = connection.default_channel  # kombu's Redis channel; kept open for the process's life
        self._sep = channel.sep
        self._connection = connection
        self._client = channel.Client(connection_pool=channel.pool)
        self._usable = True


_publisher = RedisPublisher()


def stop_consuming(*, queue: str, node: str) -> None:
    """Ask one worker to stop taking messages from a queue now (best effort: a draining worker's
    heartbeat reads the flag from the database and stops consuming at its next beat anyway)."""
    try:
        app.control.cancel_consumer(queue, destination=[node])
    except Exception as exc:
        log.warning("could not reach worker %s to stop consuming: %s", node, exc)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=10)


def task_ids_in_broker(queues: list[str], *, reserved_within: float | None = None) -> set[str]:
    """Task ids with a message waiting in any priority list of these queues, or reserved unacked.

    With `reserved_within`, a reservation counts only if a worker took the message within that
    many seconds. A task still queued whose message was reserved longer ago is held by a worker
    that died with it (typically a retry it was keeping until its countdown ran out), and Redis
    hands such a message back only after the visibility timeout, which is over an hour.
    """
    client = redis_client()
    ids: set[str] = set()
    keys = []
    for queue in queues:
        keys.append(queue)
        keys.extend(f"{queue}:{step}" for step in settings.BROKER_PRIORITY_STEPS if step)
    pipe = client.pipeline()
    for key in keys:
        pipe.lrange(key, 0, -1)
    pipe.hgetall("unacked")
    if reserved_within is not None:
        pipe.zrangebyscore("unacked_index", time.time() - reserved_within, "+inf")
    results = pipe.execute()
    lists, unacked = results[: len(keys)], results[len(keys)]
    for raw in (m for lst in lists for m in lst):
        ids.add(_task_id_of(json.loads(raw)))
    if reserved_within is not None:
        fresh = set(results[-1])
        unacked = {tag: raw for tag, raw in unacked.items() if tag in fresh}
    for raw in unacked.values():
        ids.add(_task_id_of(json.loads(raw)[0]))
    ids.discard("")
    return ids


def _task_id_of(message: dict) -> str:
    message_id = (message.get("headers") or {}).get("id") or ""
    return message_id.split(".", 1)[0]


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages waiting per queue, all priorities together (for `hive pools` and scaling)."""
    client = redis_client()
    pipe = client.pipeline()
    for queue in queues:
        for step in settings.BROKER_PRIORITY_STEPS:
            pipe.llen(queue if not step else f"{queue}:{step}")
    counts = pipe.execute()
    n = len(settings.BROKER_PRIORITY_STEPS)
    return {queue: sum(counts[i * n : (i + 1) * n]) for i, queue in enumerate(queues)}
