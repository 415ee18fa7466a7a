"""One front-door request, called through Django's WSGI application in this process: CPU per
request, the statements it sends, and an A/B switch measured alternately in one process.

    .venv/bin/python -m bench.request_profile [--kind post|get|github] [-n 1000] [--profile]
    .venv/bin/python -m bench.request_profile --kind github --switch hive_project.postgresql.base:PROVEN_FOR=0
    .venv/bin/python -m bench.request_profile --switch external_api.api.serializers:TaskCreateSerializer.reuse_fields=False

No server and no load generator: what is measured is the hive's own code (middleware,
authentication, throttling, the view, the service, its database and Redis round trips) in a bench
world of its own (bench/world.py; PostgreSQL when LEANVIBE_DATABASE_URL names a server). CPU is
this thread's (`time.thread_time`). `--switch module:NAME=VALUE` sets a module's (or `module:Class.NAME`, a class's) attribute for
every other block of 100 requests (the odd ones keep its own value) and reports the median of
each side: a change measured alternately is not fooled by a machine whose load moves.
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import importlib
import io
import json
import pstats
import statistics
import sys
import time
from typing import Any

BLOCKS = 20
BLOCK = 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["post", "get", "github", "github-again"], default="post")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="cProfile the requests; print the top 40")
    parser.add_argument("--switch", default="", help="module:NAME=VALUE, set for every other block")
    parser.add_argument("--block", type=int, default=BLOCK, help=f"requests per block of --switch (default {BLOCK})")
    args = parser.parse_args(argv)

    from bench.world import FRONT_CAPABILITY, migrated_world

    with migrated_world():
        from django.core.wsgi import get_wsgi_application
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from coordination.models import Team
        from external_api.services import apikey_create

        team, _ = Team.objects.get_or_create(name="bench")
        _, key = apikey_create(name="bench-profile", scopes=["read", "write", "commands"], team=team)
        app = get_wsgi_application()
        task = {"capabilities": [FRONT_CAPABILITY], "prompt": "bench", "command": ["true"], "max_attempts": 1}
        made = iter(range(1, 10**9))

        def environ() -> dict[str, Any]:
            headers = {"X-API-Key": key}
            method, path, query, body = "POST", "/api/v1/tasks/", "", json.dumps(task).encode()
            if args.kind == "get":
                method, query, body = "GET", "status=queued&pool=backend&limit=50", b""
            elif args.kind.startswith("github"):
                from bench.frontdoors import _delivery

                n = next(made)
                if args.kind == "github-again":  # past the warm-up, every delivery id was seen before
                    n = n % 10 + 1
                request = _delivery(f"profile-{n}", n)
                path, body, headers = request.path, request.body, dict(request.headers)
            env = {
                "REQUEST_METHOD": method,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8000",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "127.0.0.1",
                "HTTP_HOST": "127.0.0.1:8000",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body),
                "wsgi.url_scheme": "http",
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
            }
            for name, value in headers.items():
                if name != "Content-Type":
                    env["HTTP_" + name.upper().replace("-", "_")] = value
            return env

        statuses: list[str] = []

        def one() -> None:
            response = app(environ(), lambda status, headers, exc_info=None: statuses.append(status))
            b"".join(response)
            response.close()

        for _ in range(30):  # warm: connections, imports, caches, compiled statements
            one()
        with CaptureQueriesContext(connection) as queries:
            one()
        print(f"{args.kind}: {statuses[-1]}; {len(queries)} SQL statements")
        if args.switch:
            target, value = args.switch.split("=", 1)
            module_name, path = target.split(":")
            module: Any = importlib.import_module(module_name)
            *owners, name = path.split(".")  # module:NAME or module:Class.NAME
            for owner in owners:
                module = getattr(module, owner)
            own, other = getattr(module, name), ast.literal_eval(value)
            spent: dict[bool, list[float]] = {True: [], False: []}
            for block in range(BLOCKS):
                switched = block % 2 == 1
                setattr(module, name, other if switched else own)
                for _ in range(10):
                    one()
                started = time.thread_time()
                for _ in range(args.block):
                    one()
                spent[switched].append(1000 * (time.thread_time() - started) / args.block)
            setattr(module, name, own)
            for switched, label in ((False, f"{name}={own!r}"), (True, f"{name}={other!r}")):
                print(
                    f"{label}: CPU {statistics.median(spent[switched]):.3f} ms per request (median of {BLOCKS // 2} blocks)"
                )
        else:
            profiler = cProfile.Profile(time.thread_time) if args.profile else None
            started, cpu = time.perf_counter(), time.thread_time()
            if profiler:
                profiler.enable()
            for _ in range(args.n):
                one()
            if profiler:
                profiler.disable()
            wall, used = time.perf_counter() - started, time.thread_time() - cpu
            print(f"{args.n} requests: CPU {1000 * used / args.n:.2f} ms each, wall {1000 * wall / args.n:.2f} ms")
            if profiler:
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(40)
        if set(statuses[30:]) - {"200 OK", "201 Created"}:
            print(f"unexpected answers: {sorted(set(statuses))}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
