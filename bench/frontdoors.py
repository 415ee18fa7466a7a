"""Scenarios 3–5: the front doors, each through a real `hive serve` process on loopback.

3. api: POST /api/v1/tasks/ and a filtered GET /api/v1/tasks/ with an API key (keep-alive
   connections, bounded concurrency); on PostgreSQL, the same list query again with 1,000,000 task
   rows COPYed in.
4. stream: M WebSocket subscribers on /ws/events/; K custom events published through
   POST /api/v1/events/; per event, publish → the last subscriber has it.
5. webhooks: signed GitHub `issue_comment` deliveries, each new, then the same ids again (duplicates).

The tasks they create go to pool `backend`, which no bench process serves: they stay queued.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
import uuid
from hashlib import sha256

from bench import memory
from bench.loadgen import Outcome, drive, json_request
from bench.scenarios import Goal, Run, _alive, _clear_queue, _get, percentiles
from bench.world import FRONT_CAPABILITY, FRONT_POOL, GITHUB_SECRET, wait_until
from hive_project.launch import free_port
from hive_project.paths import BASE_DIR

HOST = "127.0.0.1"
BIG_TABLE_ROWS = 1_000_000
LIST_PATH = f"/api/v1/tasks/?status=queued&pool={FRONT_POOL}&limit=50"
STREAM_SETTINGS = {  # for the streaming process of scenario 4
    "LEANVIBE_EXTERNAL_API_EVENT_STREAMING_BATCH_SIZE": "1",
    "LEANVIBE_EXTERNAL_API_EVENT_STREAMING_FLUSH_INTERVAL": "0.05",
}


# --- shared ----------------------------------------------------------------------------------------
def _prepare(run: Run) -> str:
    """Pools in the database, a team and an API key for the bench; returns the raw key."""
    from django.conf import settings

    from coordination.fleet import pool_sync
    from coordination.models import Team
    from external_api.services import apikey_create

    pool_sync(config=settings.HIVE_CONFIG)
    team, _ = Team.objects.get_or_create(name="bench")
    _, raw = apikey_create(name=f"bench-{uuid.uuid4().hex[:8]}", scopes=["read", "write", "commands"], team=team)
    return raw


PEER_SETTINGS = "bench.peer.settings"  # the plain DRF ModelViewSet (bench/peer/), scenario 3's peer
PEER_CREATE, PEER_LIST = "/peer/notes/", "/peer/notes/?status=queued&limit=50"


def _serve(run: Run, name: str, role: str = "all", args: tuple[str, ...] = (), **env: str):
    """`hive serve --role <role>` on a free port, as production starts it (its default server for
    the role), with `args` added; returns once it answers /health."""
    port = free_port()
    proc = run.world.spawn(
        name,
        [sys.executable, "-m", "hive_project.cli", "serve", "--host", HOST, "--port", str(port), "--role", role, *args],
        env=run.world.child_env(**env),
    )
    wait_until(
        lambda: _alive(run.world, proc) and _get(f"http://{HOST}:{port}/health") == 200,
        timeout=90,
        interval=0.2,
        what=f"the {name} process to answer /health",
    )
    return proc, port


def _peer_table(run: Run) -> None:
    """The peer's one table in the run's database (its app has no migrations: syncdb makes it)."""
    import subprocess

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--run-syncdb", "--verbosity", "0"],
        cwd=BASE_DIR,
        env=run.world.child_env(DJANGO_SETTINGS_MODULE=PEER_SETTINGS),
        check=True,
    )


def _summary(outcome: Outcome) -> dict:
    return {
        "requests": len(outcome.latencies_ms),
        "errors": outcome.errors,
        "statuses": outcome.statuses,
        "seconds": round(outcome.seconds, 3),
        "requests_per_s": round(outcome.per_s, 1),
        "latency_ms": percentiles(outcome.latencies_ms) if len(outcome.latencies_ms) > 1 else None,
    }


def _check(outcome: Outcome, ok: set[int], what: str) -> None:
    bad = {s: n for s, n in outcome.statuses.items() if s not in ok}
    if bad or outcome.errors:
        from bench.world import BenchError

        raise BenchError(f"{what}: unexpected answers {bad}, {outcome.errors} connection errors")


# --- scenario 3: the REST API ---------------------------------------------------------------------
def scenario_api(run: Run) -> None:
    """The hive's gateway as production serves it (gunicorn), the same gateway under uvicorn (the
    other server `hive serve` offers), and the peer: a plain DRF ModelViewSet served by the same
    command, same middleware, same API key authentication class, in the same database."""
    import redis

    n, c = run.options.api_requests, run.options.http_concurrency
    key = _prepare(run)
    _peer_table(run)
    auth = {"X-API-Key": key}
    body = {"capabilities": [FRONT_CAPABILITY], "prompt": "bench", "command": ["true"], "max_attempts": 1}
    note = {"title": "bench", "body": "bench", "status": "queued"}
    sides = {  # name -> (process, port, create path, body, list path)
        "hive": (*_serve(run, "web-api", role="gateway"), "/api/v1/tasks/", body, LIST_PATH),
        "hive_uvicorn": (
            *_serve(run, "web-api-uvicorn", role="gateway", args=("--server", "uvicorn")),
            "/api/v1/tasks/",
            body,
            LIST_PATH,
        ),
        "peer": (
            *_serve(run, "web-peer", role="gateway", DJANGO_SETTINGS_MODULE=PEER_SETTINGS),
            PEER_CREATE,
            note,
            PEER_LIST,
        ),
    }
    result: dict = {"requests": n, "concurrency": c}
    port = sides["hive"][1]
    try:
        for _proc, side_port, create, payload, _listing in sides.values():  # warm-up: imports, connections
            drive(HOST, side_port, [json_request("POST", create, payload, auth) for _ in range(2 * c)], c)
        for kind in ("create", "list"):
            for name, (_, side_port, create, payload, listing) in sides.items():
                if kind == "create":
                    run.echo(f"  {name}: POST {create}: {n} requests, concurrency {c}…")
                    outcome = drive(HOST, side_port, [json_request("POST", create, payload, auth) for _ in range(n)], c)
                    _check(outcome, {201}, f"{name}: POST {create}")
                else:
                    run.echo(f"  {name}: GET {listing}: {n} requests, concurrency {c}…")
                    outcome = drive(HOST, side_port, [json_request("GET", listing, None, auth) for _ in range(n)], c)
                    _check(outcome, {200}, f"{name}: GET {listing}")
                result.setdefault(name, {})[kind] = _summary(outcome)
        sequential = min(n, 300)
        small = drive(HOST, port, [json_request("GET", LIST_PATH, None, auth) for _ in range(sequential)], 1)
        result["hive"]["list_one_at_a_time"] = {"rows": _task_rows(), **_summary(small)}
        for name in ("hive_uvicorn", "peer"):
            run.world.stop(sides[name][0])
        big = _big_table(run, n=sequential, port=port, auth=auth)
        result["hive"]["list_at_1m_rows"] = big
    finally:
        for proc, *_ in sides.values():
            if proc in run.world.procs:
                run.world.stop(proc)
        _clear_queue(redis.Redis.from_url(run.world.redis_url), f"hive.{FRONT_POOL}")
    run.results["api"] = result
    _api_goals(run, result, c)


def _api_goals(run: Run, result: dict, c: int) -> None:
    hive, peer, uvicorn = result["hive"], result["peer"], result["hive_uvicorn"]
    create, listed = hive["create"], hive["list"]
    rate, p99 = create["requests_per_s"], create["latency_ms"]["p99"]
    to_peer = rate / peer["create"]["requests_per_s"]
    result["create_ratio_to_peer"] = round(to_peer, 3)
    result["list_ratio_to_peer"] = round(listed["requests_per_s"] / peer["list"]["requests_per_s"], 3)
    run.goals += [
        Goal(
            f"POST /api/v1/tasks/, concurrency {c}",
            ">= 400/s, p99 < 100 ms",
            rate,
            f"{rate:.0f}/s, p99 {p99:.0f} ms",
            rate >= 400 and p99 < 100,
        ),
        Goal(
            "POST /api/v1/tasks/ vs plain DRF ModelViewSet create", ">= 0.6", to_peer, f"{to_peer:.2f}", to_peer >= 0.6
        ),
        Goal(
            f"GET /api/v1/tasks/ filtered, concurrency {c}",
            ">= 500/s",
            listed["requests_per_s"],
            f"{listed['requests_per_s']:.0f}/s, p99 {listed['latency_ms']['p99']:.0f} ms",
            listed["requests_per_s"] >= 500,
        ),
    ]
    for label, part in (
        ("plain DRF ModelViewSet: POST", peer["create"]),
        ("plain DRF ModelViewSet: GET filtered", peer["list"]),
        ("hive gateway under uvicorn: POST", uvicorn["create"]),
        ("hive gateway under uvicorn: GET filtered", uvicorn["list"]),
    ):
        shown = f"{part['requests_per_s']:.0f}/s, p99 {part['latency_ms']['p99']:.0f} ms"
        run.goals.append(Goal(f"{label}, concurrency {c}", "(peer)", part["requests_per_s"], shown, None))
    big = hive["list_at_1m_rows"]
    if big.get("skipped"):
        run.goals.append(Goal("filtered task list p99 at 1M rows", "< 15 ms", None, "skipped (SQLite)", None))
    else:
        p99 = big["latency_ms"]["p99"]
        run.goals.append(Goal("filtered task list p99 at 1M rows", "< 15 ms", p99, f"{p99:.1f} ms", p99 < 15))


def _task_rows() -> int:
    from coordination.models import Task

    return Task.objects.count()


def _big_table(run: Run, *, n: int, port: int, auth: dict) -> dict:
    from django.db import connection

    if connection.vendor != "postgresql":
        return {
            "skipped": "SQLite: the 1,000,000-row list is measured on PostgreSQL only "
            "(set LEANVIBE_DATABASE_URL to a PostgreSQL server)"
        }
    rows = run.options.big_table_rows
    run.echo(f"  COPY {rows:,} task rows…")
    started = time.perf_counter()
    _copy_tasks(rows)
    loaded = time.perf_counter() - started
    run.echo(f"  GET {LIST_PATH} at {_task_rows():,} rows: {n} requests, one at a time…")
    outcome = drive(HOST, port, [json_request("GET", LIST_PATH, None, auth) for _ in range(n)], 1)
    _check(outcome, {200}, "GET /api/v1/tasks/ at 1M rows")
    return {"rows": _task_rows(), "copy_seconds": round(loaded, 1), **_summary(outcome)}


def _copy_tasks(rows: int) -> None:
    """COPY `rows` tasks shaped like one the API created (same team), spread over two pools, 30 days
    and every status (2% queued), then VACUUM ANALYZE. The template's own line, as COPY writes it, is the
    row format, so every NOT NULL column is filled the way the application fills it."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from agents.models import AgentPool
    from coordination.models import Task

    template = Task.objects.filter(pool__name=FRONT_POOL).order_by("-created_at").first()
    other_pool = AgentPool.objects.exclude(name=FRONT_POOL).values_list("id", flat=True).first()
    table = Task._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.connection.cursor()
        raw.execute(f"SELECT * FROM {table} LIMIT 0")
        columns = [d.name for d in raw.description]
        with raw.copy(f"COPY (SELECT * FROM {table} WHERE id = %s) TO STDOUT", (template.id,)) as copy:
            line = b"".join(bytes(chunk) for chunk in copy).decode().rstrip("\n")
        base = line.split("\t")
        at = {name: columns.index(name) for name in ("id", "status", "pool_id", "created_at", "updated_at")}
        statuses = ["succeeded"] * 40 + ["failed"] * 4 + ["cancelled"] * 2 + ["dead"] + ["running", "queued"]
        now = timezone.now()
        step = timedelta(days=30) / rows
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            chunk: list[str] = []
            for i in range(rows):
                values = list(base)
                values[at["id"]] = str(uuid.uuid4())
                values[at["status"]] = statuses[i % len(statuses)]
                values[at["pool_id"]] = str(other_pool if i % 2 and other_pool else template.pool_id)
                stamp = (now - step * (i + 1)).isoformat()
                values[at["created_at"]] = values[at["updated_at"]] = stamp
                chunk.append("\t".join(values))
                if len(chunk) == 20_000:
                    copy.write("\n".join(chunk) + "\n")
                    chunk = []
            if chunk:
                copy.write("\n".join(chunk) + "\n")
        # A table that grew to this size over 30 days has long been vacuumed; a bulk-loaded one has
        # its first autovacuum pass still ahead, which would otherwise land in the middle of the
        # measurement (seconds of I/O and CPU on a small machine), so it is done here, first.
        raw.execute(f"VACUUM ANALYZE {table}")


# --- scenario 4: stream fan-out ---------------------------------------------------------------------
def scenario_stream(run: Run) -> None:
    m, k = run.options.subscribers, run.options.stream_events
    key = _prepare(run)
    settings = {**STREAM_SETTINGS, "LEANVIBE_EXTERNAL_API_EVENT_STREAMING_MAX_CONNECTIONS": str(m + 100)}
    streamer, stream_port = _serve(run, "web-stream", role="streaming", **settings)
    gateway, api_port = _serve(run, "web-gateway", role="gateway")
    try:
        run.echo(f"  {m} WebSocket subscribers, {k} events…")
        with memory.Sampler(streamer.pid, interval=0.1) as sampler:
            idle = memory.measure(streamer.pid)
            measured = asyncio.run(_fan_out(run, key, stream_port, api_port, m, k))
    finally:
        run.world.stop(gateway)
        run.world.stop(streamer)
    latencies = measured.pop("latencies_ms")
    result = {
        "subscribers_asked": m,
        "events": k,
        "gap_s": run.options.stream_gap,
        "settings": settings,
        **measured,
        "fanout_ms": percentiles(latencies) if len(latencies) > 1 else None,
        "streaming_rss_mb": {"before_subscribers": idle.rss_mb, "peak": sampler.peak.rss_mb},
        "raw_ms": {"fanout": [round(x, 2) for x in latencies]},
    }
    run.results["stream"] = result
    used = measured["subscribers"]
    if result["fanout_ms"]:
        p99 = result["fanout_ms"]["p99"]
        met = p99 < 250 and used >= 2000 and measured["missed"] == 0
        run.goals.append(
            Goal(
                f"stream fan-out p99 to the last of {used} subscribers",
                "< 250 ms at 2000",
                p99,
                f"{p99:.0f} ms ({used} subscribers)",
                met,
            )
        )
    rss = sampler.peak.rss_mb
    run.goals.append(Goal(f"streaming process peak RSS, {used} subscribers", "(reported)", rss, f"{rss:.0f} MB", None))


def subscriber_processes(m: int) -> int:
    """How many processes the M subscribers are spread over: 4 to 8, about 250 in each."""
    return max(1, min(m, 8, max(4, -(-m // 250))))


async def _fan_out(run: Run, key: str, stream_port: int, api_port: int, m: int, k: int) -> dict:
    """M subscribers spread over several processes (bench/stream_subscribers.py); K events posted
    one by one. Each process reports, per event, its first and last arrival and how many of its
    subscribers had it; the publisher's clock and theirs are the same (time.time, one machine)."""
    url = f"ws://{HOST}:{stream_port}/ws/events/?api_key={key}&event_types=custom.bench"
    p = subscriber_processes(m)
    shares = [m // p + (1 if i < m % p else 0) for i in range(p)]
    env = run.world.child_env()
    logs = run.world.var / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[asyncio.subprocess.Process] = []
    failed = 0  # subscribers that could not connect, or were closed before the end
    samples: list[str] = []
    from bench.loadgen import Connection

    conn = Connection(HOST, api_port)
    sent: dict[int, float] = {}
    answered: dict[int, float] = {}  # when the POST's answer came (the event is committed by then)
    reports: list[dict] = []
    try:
        connected = 0
        for i, share in enumerate(shares):  # one process after the other connects its share
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.stream_subscribers",
                url,
                str(share),
                str(k),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=open(logs / f"subscribers-{i}.log", "ab"),
                env=env,
                cwd=str(BASE_DIR),
                limit=2**24,
            )
            procs.append(proc)
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=120 + 2 * share)
            ready = json.loads(line or b'{"ready": 0, "failed": 1, "failures": ["the process ended"]}')
            connected += ready["ready"]
            failed += ready["failed"]
            samples += ready["failures"]
        await asyncio.sleep(0.5)
        for seq in range(-2, k):  # two unmeasured events first: every subscriber's path warmed up
            sent[seq] = time.time()
            status, body = await conn.send(
                json_request(
                    "POST",
                    "/api/v1/events/",
                    {"type": "custom.bench", "payload": {"sent": sent[seq], "seq": seq}},
                    {"X-API-Key": key},
                )
            )
            answered[seq] = time.time()
            if status != 201:
                samples.append(f"POST /api/v1/events/ answered {status}: {body[:200]!r}")
            await asyncio.sleep(run.options.stream_gap)
        deadline = time.monotonic() + 10
        for proc in procs:  # a process answers when all its subscribers have every event
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                proc.stdin.write(b"stop\n")
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            reports.append(json.loads(line or b"{}"))
    finally:
        await conn.close()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    arrivals: dict[int, list[float]] = {}
    for report in reports:
        failed += report.get("dropped", 0)
        samples += report.get("failures", [])
        for seq, (first, last, count) in (report.get("arrivals") or {}).items():
            seen = arrivals.setdefault(int(seq), [first, last, 0])
            seen[0], seen[1], seen[2] = min(seen[0], first), max(seen[1], last), seen[2] + count
    complete = [s for s in range(k) if s in arrivals and arrivals[s][2] >= connected]
    latencies = [1000 * (arrivals[s][1] - sent[s]) for s in complete]
    first = [1000 * (arrivals[s][0] - sent[s]) for s in complete]
    return {
        "subscribers": connected,
        "subscriber_processes": p,
        "connect_failures": failed,
        "failure_sample": samples[:3],
        "missed": k - len(complete),
        "latencies_ms": latencies,
        "first_subscriber_ms": percentiles(first) if len(first) > 1 else None,
        "post_ms": percentiles([1000 * (answered[s] - sent[s]) for s in range(k) if s in answered]) if k > 1 else None,
    }


# --- scenario 5: GitHub webhooks -------------------------------------------------------------------------
def scenario_webhooks(run: Run) -> None:
    import redis

    n, c = run.options.webhook_deliveries, run.options.http_concurrency
    _prepare(run)
    web, port = _serve(run, "web-webhooks", role="webhooks")
    tag = uuid.uuid4().hex[:8]
    try:
        drive(HOST, port, [_delivery(f"warm-{tag}-{i}", 10_000_000 + i) for i in range(2 * c)], c)
        requests = [_delivery(f"bench-{tag}-{i}", i + 1) for i in range(n)]
        run.echo(f"  {n} new GitHub deliveries, concurrency {c}…")
        new = drive(HOST, port, requests, c)
        _check(new, {201}, "new GitHub deliveries")
        run.echo(f"  the same {n} deliveries again (duplicates)…")
        again = drive(HOST, port, requests, c)
        _check(again, {200}, "duplicate GitHub deliveries")
    finally:
        run.world.stop(web)
        _clear_queue(redis.Redis.from_url(run.world.redis_url), f"hive.{FRONT_POOL}")
    run.results["webhooks"] = {"deliveries": n, "concurrency": c, "new": _summary(new), "duplicate": _summary(again)}
    for label, part in (("new", new), ("duplicate", again)):
        run.goals.append(
            Goal(
                f"GitHub deliveries/s, {label}, concurrency {c}",
                ">= 400/s" if label == "new" else "(reported)",
                part.per_s,
                f"{part.per_s:.0f}/s, p99 {percentiles(part.latencies_ms)['p99']:.0f} ms",
                part.per_s >= 400 if label == "new" else None,
            )
        )


def _delivery(delivery_id: str, comment_id: int):
    body = json.dumps(
        {
            "action": "created",
            "issue": {"id": 1007, "number": 7, "title": "Bench", "html_url": "https://github.com/acme/web/issues/7"},
            "comment": {
                "id": comment_id,
                "body": f"/hive do bench item {comment_id}",
                "author_association": "MEMBER",
                "html_url": f"https://github.com/acme/web/issues/7#issuecomment-{comment_id}",
            },
            "repository": {"full_name": "acme/web"},
            "sender": {"login": "octocat"},
        }
    ).encode()
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, sha256).hexdigest()
    from bench.loadgen import Request

    return Request(
        "POST",
        "/webhooks/github/",
        {
            "Content-Type": "application/json",
            "X-GitHub-Event": "issue_comment",
            "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": signature,
        },
        body,
    )
