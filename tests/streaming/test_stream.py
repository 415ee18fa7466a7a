"""`/ws/events/` on the real ASGI application and a real Redis subscription, with events
published for real by `coordination.events.publish` after commit."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from coordination.models import Event, Priority
from coordination.services import task_submit
from tests.streaming.conftest import apublish, open_stream, publish_now, refused_with, run

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"https://hive.example.com")


def host(value: str) -> tuple[bytes, bytes]:
    return (b"host", value.encode())


# --- who may connect ---------------------------------------------------------------------------
def test_refuses_a_client_without_credentials(world):
    code, reason = run(refused_with())
    assert code == 4401 and "authentication required" in reason


def test_refuses_bad_and_revoked_keys_and_tokens(world):
    from django.utils import timezone

    from external_api.models import ApiKey

    assert run(refused_with("api_key=hive_nothere_secret"))[0] == 4401
    assert run(refused_with("token=not.a.jwt"))[0] == 4401
    assert run(refused_with(headers=[(b"x-api-key", (world.acme_key + "x").encode())]))[0] == 4401
    ApiKey.objects.filter(prefix=world.acme_key.split("_")[1]).update(revoked_at=timezone.now())
    assert run(refused_with(f"api_key={world.acme_key}")) == (4401, "API key revoked or expired")


def test_refuses_a_key_without_the_read_scope(world):
    from tests.streaming.conftest import make_key

    code, reason = run(refused_with(f"api_key={make_key(world.acme, ['write'])}"))
    assert code == 4403 and "read scope" in reason


def test_a_wrong_key_is_not_rescued_by_the_session(world):
    client = Client()
    client.force_login(world.staff)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    assert run(refused_with("api_key=hive_bad_key", headers=[cookie]))[0] == 4401


def test_every_credential_works(world):
    jwt = str(AccessToken.for_user(world.alice))
    browser = Client()
    browser.force_login(world.staff)
    cookie = (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())

    async def scenario():
        viewers = []
        for kwargs in (
            {"query": f"api_key={world.acme_key}"},
            {"headers": [(b"x-api-key", world.acme_key.encode())]},
            {"headers": [(b"authorization", f"Api-Key {world.acme_key}".encode())]},
            {"subprotocols": ["hive.events", f"hive.key.{world.acme_key}"]},
            {"query": f"token={jwt}"},
            {"headers": [(b"authorization", f"Bearer {jwt}".encode())]},
            {"subprotocols": ["hive.events", f"hive.token.{jwt}"]},
            {"headers": [cookie]},
        ):
            stream = await open_stream(
                kwargs.get("query", ""), headers=kwargs.get("headers"), subprotocols=kwargs.get("subprotocols")
            )
            viewers.append(stream.welcome["viewer"])
            await stream.close()
        return viewers

    viewers = run(scenario())
    acme = world.acme.id
    assert [v["kind"] for v in viewers] == ["api_key"] * 4 + ["jwt"] * 3 + ["session"]
    assert all(v["team"] == acme and not v["staff"] for v in viewers[:7])
    assert viewers[7] == {"ident": f"user:{world.staff.pk}", "kind": "session", "team": None, "staff": True}


def test_a_chosen_subprotocol_is_echoed(world):
    async def scenario():
        from tests.streaming.conftest import connect

        communicator = await connect(subprotocols=["hive.events", f"hive.key.{world.acme_key}"])
        accepted, subprotocol = await communicator.connect()
        await communicator.disconnect()
        return accepted, subprotocol

    assert run(scenario()) == (True, "hive.events")


def test_origin_check(world, stream_config):
    stream_config(cors_origins=["https://hive.example.com"])
    key = f"api_key={world.acme_key}"

    async def scenario():
        results = {}
        for name, headers in {
            "allowed": [ORIGIN, host("api.internal:8000")],
            "foreign": [(b"origin", b"https://evil.example"), host("api.internal:8000")],
            "same host": [(b"origin", b"http://api.internal:8000"), host("api.internal:8000")],
            "same host, other port": [(b"origin", b"http://api.internal:9000"), host("api.internal:8000")],
            "no origin (a program)": [host("api.internal:8000")],
        }.items():
            code, _ = await refused_with(key + "&last_event_id=x", headers=headers)
            results[name] = code
        return results

    # a malformed last_event_id makes every admitted connection close with 4400; a foreign origin
    # is refused before that with 4403 (this key-authenticated socket may use the gateway's origins)
    assert run(scenario()) == {
        "allowed": 4400,
        "foreign": 4403,
        "same host": 4400,
        "same host, other port": 4403,
        "no origin (a program)": 4400,
    }


def test_any_origin_when_configured_with_a_star(world, stream_config):
    stream_config(cors_origins=["*"])

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}", headers=[(b"origin", b"https://anywhere.example")])
        await stream.close()

    run(scenario())


def test_anonymous_viewers_when_streaming_auth_is_off_see_only_team_less_events(world, settings):
    config = settings.HIVE_CONFIG
    security = config.security.event_streaming
    off = security.model_copy(update={"authentication": security.authentication.model_copy(update={"type": "none"})})
    settings.HIVE_CONFIG = config.model_copy(
        update={"security": config.security.model_copy(update={"event_streaming": off})}
    )

    async def scenario():
        stream = await open_stream("batch_size=1")
        private = await apublish("custom.private", team_id=world.acme.id)
        public = await apublish("custom.public")
        await stream.until_events([public])
        await stream.quiet(0.3)
        await stream.close()
        return stream, private, public

    stream, private, public = run(scenario())
    assert stream.welcome["viewer"]["kind"] == "anonymous" and stream.ids == [public]


def test_bad_connect_parameters_are_refused_with_a_reason(world):
    key = f"api_key={world.acme_key}"
    assert run(refused_with(key + "&priorities=urgent"))[0] == 4400
    assert run(refused_with(key + "&tasks=not-a-uuid")) == (4400, "tasks: 'not-a-uuid' is not a task id (a UUID)")
    assert run(refused_with(key + "&compress=brotli"))[0] == 4400
    assert run(refused_with(key + "&batch_size=100000"))[0] == 4400


# --- what each client receives --------------------------------------------------------------------
def test_team_scoping(world, stream_config):
    stream_config(batch_size=1)
    acme_task = task_submit(capabilities=["python"], command=["true"], team=world.acme)
    globex_task = task_submit(capabilities=["python"], command=["true"], team=world.globex)
    staff_token = str(AccessToken.for_user(world.staff))

    async def scenario():
        acme = await open_stream(f"api_key={world.acme_key}")
        globex = await open_stream(f"api_key={world.globex_key}")
        staff = await open_stream(f"token={staff_token}")
        mine = await apublish("custom.note", task=acme_task)
        theirs = await apublish("custom.note", task=globex_task)
        shared = await apublish("agent.note")
        team_only = await apublish("custom.team", team_id=world.globex.id)
        await staff.until_events([mine, theirs, shared, team_only])
        await acme.until_events([mine, shared])
        await globex.until_events([theirs, shared, team_only])
        await acme.quiet(0.3)
        for stream in (acme, globex, staff):
            await stream.close()
        return acme.ids, globex.ids, staff.ids, (mine, theirs, shared, team_only)

    acme_ids, globex_ids, staff_ids, (mine, theirs, shared, team_only) = run(scenario())
    assert acme_ids == [mine, shared]
    assert globex_ids == [theirs, shared, team_only]
    assert staff_ids == [mine, theirs, shared, team_only]


def test_filters_on_connect_and_by_subscribe(world, stream_config, live_pools):
    stream_config(batch_size=1)
    urgent = task_submit(capabilities=["python"], command=["true"], team=world.acme, priority=Priority.CRITICAL)
    ui = task_submit(capabilities=["ui", "javascript"], command=["true"], team=world.acme)
    backend_pool = live_pools["backend"]

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}&event_types=task.*,custom.ping&pools=backend")
        assert stream.welcome["filters"]["event_types"] == ["task.*", "custom.ping"]
        skipped = [
            await apublish("custom.other", pool=backend_pool),  # type
            await apublish("task.progress", task=ui, lines=["x"]),  # pool
        ]
        passed = [
            await apublish("task.progress", task=urgent, lines=["a"]),
            await apublish("custom.ping", pool=backend_pool),
        ]
        await stream.until_events(passed)

        await stream.send({"action": "subscribe", "priorities": ["critical", "high"]})
        subscribed = await stream.message("subscribed")
        assert subscribed["filters"] == {
            "event_types": [],
            "pools": [],
            "agents": [],
            "tasks": [],
            "priorities": ["critical", "high"],
        }
        skipped += [
            await apublish("task.progress", task=ui, lines=["y"]),
            await apublish("custom.ping", pool=backend_pool),
        ]
        passed.append(await apublish("task.progress", task=urgent, lines=["b"]))
        await stream.until_events(passed)

        await stream.send({"action": "subscribe", "tasks": [str(ui.id)], "event_types": ["task.progress"]})
        await stream.message("subscribed")
        skipped.append(await apublish("task.progress", task=urgent, lines=["c"]))
        passed.append(await apublish("task.progress", task=ui, lines=["z"]))
        await stream.until_events(passed)

        await stream.send({"action": "subscribe", "priorities": ["urgent"]})
        error = await stream.message("error")
        await stream.send({"action": "dance"})
        unknown = await stream.message("error")
        await stream.send({"action": "ping"})
        await stream.message("pong")
        await stream.quiet(0.3)
        await stream.close()
        return stream.ids, passed, skipped, error, unknown

    ids, passed, skipped, error, unknown = run(scenario())
    assert ids == passed and not set(ids) & set(skipped)
    assert error["code"] == "invalid_filter" and "urgent" in error["detail"]
    assert unknown["code"] == "unknown_action"


def test_batches_of_batch_size_or_after_flush_interval(world, stream_config):
    stream_config(batch_size=3, flush_interval=0.5)

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}")
        ids = [await apublish("custom.tick", n=n) for n in range(7)]
        await stream.until_events(ids[:6], timeout=5)
        started = time.monotonic()
        await stream.until_events(ids, timeout=5)
        waited = time.monotonic() - started
        await stream.close()
        return stream.batches, ids, waited

    batches, ids, waited = run(scenario())
    assert [[e["id"] for e in batch] for batch in batches] == [ids[0:3], ids[3:6], ids[6:7]]
    assert 0.2 < waited < 3, "the last, partial batch waits for flush_interval"
    first = batches[0][0]
    assert set(first) == {"id", "type", "task", "agent", "pool", "team", "payload", "at"}
    assert first["payload"] == {"n": 0} and first["type"] == "custom.tick" and first["team"] is None


@pytest.mark.parametrize("algorithm", ["gzip", "zlib", "deflate"])
def test_compressed_batches_are_binary_frames(world, stream_config, algorithm):
    stream_config(batch_size=2, compression_enabled=True)

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}&compress={algorithm}", compression=algorithm)
        assert stream.welcome["compression"] == algorithm
        ids = [await apublish("custom.big", text="hive " * 500) for _ in range(2)]
        await stream.until_events(ids)
        await stream.close()
        return stream.frames, ids

    frames, ids = run(scenario())
    assert isinstance(frames[0], str) and json.loads(frames[0])["type"] == "welcome"  # control stays text
    assert isinstance(frames[1], bytes) and len(frames[1]) < 1000  # 5 KB of JSON, compressed
    if algorithm == "gzip":
        batch = json.loads(gzip.decompress(frames[1]))
        assert [e["id"] for e in batch["events"]] == ids


def test_compress_1_uses_the_configured_algorithm_and_nothing_when_disabled(world, stream_config):
    stream_config(compression_algorithm="zlib")

    async def welcome(query):
        stream = await open_stream(f"api_key={world.acme_key}&{query}")
        await stream.close()
        return stream.welcome["compression"]

    assert run(welcome("compress=1")) == "zlib"
    assert run(welcome("")) is None
    stream_config(compression_enabled=False)
    assert run(welcome("compress=gzip")) is None


def test_heartbeat(world, stream_config):
    stream_config(heartbeat_interval=0.2, batch_size=1)

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}")
        first = await stream.message("heartbeat", timeout=3)
        event = await apublish("custom.beat")
        await stream.until_events([event])
        after = await stream.message("heartbeat", timeout=3)
        await stream.close()
        return stream.welcome, first, after, event

    welcome, first, after, event = run(scenario())
    assert first["last_event_id"] == welcome["head"]
    assert after["last_event_id"] == event and after["at"]


def test_max_connections_across_the_redis_count(world, stream_config):
    stream_config(max_connections=2)
    key = f"api_key={world.acme_key}"

    async def scenario():
        one, two = await open_stream(key), await open_stream(key)
        refused = await refused_with(key)
        await one.close()
        three = await open_stream(key)  # a place became free
        await two.close()
        await three.close()
        return refused

    code, reason = run(scenario())
    assert code == 4429 and reason == "too many connections: the limit is 2"


def test_a_crashed_process_does_not_hold_places_for_ever(world, stream_config):
    """Leases of a process that died run out: they are not counted."""
    from coordination.dispatch import redis_client
    from external_api.streaming.connections import KEY

    stream_config(max_connections=1)
    redis_client().zadd(KEY, {"dead-process-lease": time.time() - 1})

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}")
        await stream.close()

    run(scenario())


def test_published_through_the_api_reaches_subscribers(world, stream_config):
    stream_config(batch_size=1)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=world.globex_key)

    async def scenario():
        stream = await open_stream(f"api_key={world.globex_key}&event_types=custom.*")
        response = await database_sync_to_async(api.post)(
            "/api/v1/events/", {"type": "custom.deployed", "payload": {"version": "1.2"}}, format="json"
        )
        assert response.status_code == 201, response.content
        await stream.until_events([response.json()["id"]])
        await stream.close()
        return stream.events

    (event,) = run(scenario())
    assert event["type"] == "custom.deployed" and event["payload"] == {"version": "1.2"}
    assert event["team"] == world.globex.id


# --- replay ---------------------------------------------------------------------------------------
def test_replay_after_a_reconnect_sends_every_missed_event_once_in_order_then_live_ones(world, stream_config):
    stream_config(batch_size=4, flush_interval=0.2)
    acme_task = task_submit(capabilities=["python"], command=["true"], team=world.acme)
    globex_task = task_submit(capabilities=["python"], command=["true"], team=world.globex)
    query = f"api_key={world.acme_key}&event_types=task.*,custom.*"

    async def scenario():
        stream = await open_stream(query)
        seen = await apublish("custom.before")
        await stream.until_events([seen])
        await stream.close()

        # away: 25 events for this client, and others it must not get
        missed, foreign = [], []
        for n in range(25):
            missed.append(await apublish("task.progress", task=acme_task, lines=[f"line {n}"]))
            foreign.append(await apublish("task.progress", task=globex_task, lines=["secret"]))
            foreign.append(await apublish("agent.heartbeat"))  # filtered out by type

        back = await open_stream(f"{query}&last_event_id={seen}")
        replayed = await back.message("replayed")
        live = [await apublish("custom.after", n=n) for n in range(3)]
        await back.until_events(live)
        await back.quiet(0.4)
        await back.close()
        return seen, missed, foreign, live, back, replayed

    seen, missed, foreign, live, back, replayed = run(scenario())
    assert back.ids == missed + live
    assert replayed == {"type": "replayed", "from": seen, "count": 25, "last_event_id": missed[-1], "truncated": False}
    assert [len(b) for b in back.batches[:7]] == [4, 4, 4, 4, 4, 4, 1]  # the replay, in batches
    assert [e["payload"]["lines"] for e in back.events[:2]] == [["line 0"], ["line 1"]]


def test_replay_meets_live_events_without_gap_or_duplicate(world, stream_config):
    """Events keep coming while the client reconnects and replays: it gets each exactly once."""
    stream_config(batch_size=5, flush_interval=0.1)
    start = publish_now("custom.start")
    published: list[int] = []
    stop = threading.Event()

    def publisher():
        from django.db import connection

        try:
            for n in range(120):
                published.append(publish_now("custom.flood", n=n))
                if n == 40:
                    ready.set()
                time.sleep(0.002)
        finally:
            stop.set()
            connection.close()

    ready = threading.Event()
    thread = threading.Thread(target=publisher)
    thread.start()
    ready.wait(10)

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}&last_event_id={start}")
        await asyncio.get_running_loop().run_in_executor(None, stop.wait, 30)
        await stream.until_events(published, timeout=15)
        await stream.quiet(0.3)
        await stream.close()
        return stream

    stream = run(scenario())
    thread.join()
    replayed = next(m for m in stream.messages if m["type"] == "replayed")
    replay_ids = [e["id"] for batch in stream.batches[: -(-replayed["count"] // 5)] for e in batch]
    assert replayed["count"] >= 1 and replay_ids == published[: replayed["count"]], "the replay, in id order"
    assert len(stream.ids) == len(set(stream.ids)), "no duplicates"
    assert sorted(stream.ids) == published, "none missing"
    assert stream.ids == published, "in id order, replay and live alike"


def test_subscribe_with_last_event_id_replays_with_the_new_filters(world, stream_config):
    stream_config(batch_size=10, flush_interval=0.1)
    first = publish_now("custom.a")
    ids = [publish_now("custom.a"), publish_now("custom.b"), publish_now("custom.a")]

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}")
        await stream.send({"action": "subscribe", "event_types": ["custom.a"], "last_event_id": first})
        await stream.message("subscribed")
        replayed = await stream.message("replayed")
        await stream.close()
        return stream.ids, replayed

    got, replayed = run(scenario())
    assert got == [ids[0], ids[2]] and replayed["count"] == 2


def test_replay_is_limited_to_the_viewers_team(world, stream_config):
    stream_config(batch_size=50, flush_interval=0.1)
    acme_task = task_submit(capabilities=["python"], command=["true"], team=world.acme)
    globex_task = task_submit(capabilities=["python"], command=["true"], team=world.globex)
    floor = Event.objects.order_by("-id").values_list("id", flat=True).first()
    mine = [publish_now("custom.x", task=acme_task), publish_now("custom.y")]
    publish_now("custom.x", task=globex_task)

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}&last_event_id={floor}")
        await stream.message("replayed")
        await stream.close()
        return stream.ids

    assert run(scenario()) == mine


def test_live_events_that_overtake_each_other_are_put_back_in_order(world, stream_config):
    """Publishers announce concurrently: an event may arrive before its predecessor. It waits for
    it, and only a short while when the predecessor never comes (a rolled-back transaction)."""
    from coordination.dispatch import redis_client
    from external_api.streaming.broadcast import encode, events_channel

    stream_config(batch_size=1)
    redis = redis_client()

    def send(id: int) -> None:
        """Publish an event on the events channel as broadcast.py does, in the order given."""
        redis.publish(events_channel(), encode(event(id)))

    def event(id: int) -> dict:
        return {
            "id": id,
            "type": "custom.order",
            "task": None,
            "agent": None,
            "pool": None,
            "team": None,
            "payload": {},
            "at": "2030-01-01T00:00:00Z",
        }

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}")
        head = stream.welcome["head"]
        for id in (head + 3, head + 2, head + 1):
            send(id)
        await stream.until_events([head + 1, head + 2, head + 3])
        started = time.monotonic()
        send(head + 5)  # head + 4 never comes
        await stream.until_events([head + 5])
        waited = time.monotonic() - started
        send(head + 4)  # late after all: sent, not lost
        await stream.until_events([head + 4])
        await stream.close()
        return [id - head for id in stream.ids], waited

    order, waited = run(scenario())
    assert order == [1, 2, 3, 5, 4]
    assert 0.15 < waited < 2


def test_an_idle_stream_stays_open(world, stream_config):
    """A quiet stream stays open and still gets the next event (the subscription's reads time out
    and are retried; a socket timeout must not end it)."""
    stream_config(batch_size=1)

    async def scenario():
        stream = await open_stream(f"api_key={world.acme_key}")
        await stream.quiet(7)
        event = await apublish("custom.after_a_while")
        await stream.until_events([event])
        await stream.close()

    run(scenario())
