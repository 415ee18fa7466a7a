"""What the hive learned, on the terminal: `hive predict`, `hive ml status|train`, `hive insights`,
`hive decisions`. The same reads as the API (ml.selectors); the CLI is an operator on the hive's own
machine, so it sees every team's decisions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from hive_project.cli import fail, main, setup_django
from hive_project.cli.output import clean, table


def span(value: float | None) -> str:
    """Seconds as a person reads them: 42s, 3m05s, 1h02m."""
    if value is None:
        return "-"
    value = max(0.0, value)
    if value < 60:
        return f"{value:.0f}s"
    if value < 3600:
        return f"{int(value // 60)}m{int(value % 60):02d}s"
    return f"{int(value // 3600)}h{int(value % 3600 // 60):02d}m"


def clock(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone().strftime("%H:%M:%S")


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# --- hive predict ------------------------------------------------------------------------------------------
@main.command()
@click.option("--capability", "-c", "capabilities", multiple=True, required=True, help="Required capability (repeat).")
@click.option("--type", "task_type", default="general", show_default=True, help="Task type.")
@click.option("--complexity", type=click.IntRange(1, 10), help="1 (trivial) to 10.")
@click.option("--priority", "-p", default="normal", type=click.Choice(["low", "normal", "high", "critical"]))
@click.option("--json", "json_out", is_flag=True, help="Print the predictions as a JSON array.")
def predict(capabilities, task_type, complexity, priority, json_out) -> None:
    """Predict, for each eligible pool, how a task of this kind would go if submitted now: duration
    (p50, p90), probability of success, expected wait, ETA and the model version."""
    setup_django()
    from coordination.errors import HiveError
    from ml.predict import NoModel
    from ml.selectors import predictions_for

    try:
        found = predictions_for(
            capabilities=list(capabilities), task_type=task_type, complexity=complexity, priority=priority, source="cli"
        )
    except HiveError as exc:
        fail(f"{exc.code}: {exc.detail}")
    except NoModel as exc:
        fail(f"no_model: {exc}", code=1)
    if json_out:
        click.echo(as_json([f.as_dict() for f in found]))
        return
    rows = [
        (
            p.pool,
            span(p.p50),
            span(p.p90),
            _percent(p.success),
            f"{p.attempts:.2f}",
            span(p.wait),
            f"{span(p.expected)} ({clock(f.eta)})",
            p.history,
        )
        for f in found
        for p in [f.prediction]
    ]
    click.echo(table(["POOL", "P50", "P90", "SUCCESS", "ATTEMPTS", "WAIT", "ETA", "HISTORY"], rows))
    click.echo(f"model: {found[0].prediction.model_version}")


# --- hive ml ------------------------------------------------------------------------------------------------
@main.group()
def ml() -> None:
    """The learned models: their versions and measures, and training them now."""


@ml.command("status")
@click.option("--kind", type=click.Choice(["duration", "success", "forecast"]))
@click.option("--json", "json_out", is_flag=True, help="Print a JSON array of the model versions.")
def ml_status(kind, json_out) -> None:
    """List the model versions: kind, version, when trained, samples, features, the held-out error
    next to the baseline's, active or not, and the active ones' drift on newer history."""
    setup_django()
    from ml.selectors import model_version_dict, model_versions

    rows = [model_version_dict(v) for v in model_versions(kind=kind)]
    if json_out:
        click.echo(as_json(rows))
        return
    if not rows:
        click.echo("no models yet: `hive ml train` once the hive has finished at least 50 attempts")
        return
    lines = [
        (
            r["kind"],
            f"v{r['version']}",
            r["trained_at"].astimezone().strftime("%Y-%m-%d %H:%M"),
            r["samples"],
            _features(r["features"]),
            _versus(r),
            "yes" if r["active"] else "no",
            _drift(r["drift"]),
        )
        for r in rows
    ]
    click.echo(
        table(
            ["KIND", "VERSION", "TRAINED", "SAMPLES", "FEATURES", "ERROR (MODEL / BASELINE)", "ACTIVE", "DRIFT"], lines
        )
    )


def _features(names: list[str]) -> str:
    text = ", ".join(names)
    return f"{len(names)}: {text[:40]}…" if len(text) > 40 else f"{len(names)}: {text}"


def _versus(row: dict[str, Any]) -> str:
    metric = row["metric"]
    model, baseline = row["metrics"].get(metric), row["baseline_metrics"].get(metric)
    if model is None:
        return "-"
    return f"{metric} {model:.4g} / {baseline:.4g}" if baseline is not None else f"{metric} {model:.4g}"


def _drift(drift: dict[str, Any] | None) -> str:
    if not drift:
        return "-"
    return f"{drift['ratio']:+.0%} on {drift['rows']} newer"


@ml.command("train")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["duration", "success", "forecast"]),
    help="Train this kind only (repeat). Default: every kind.",
)
@click.option("--json", "json_out", is_flag=True, help="Print the training report as JSON.")
def ml_train_cmd(kinds, json_out) -> None:
    """Train now from the finished attempts; a version becomes active only when it beats the
    baseline and the active version (by the adaptation threshold). Exit 1 if another training runs."""
    setup_django()
    from ml.services import KINDS, ml_train

    report = ml_train(kinds=list(dict.fromkeys(kinds)) or list(KINDS))
    if json_out:
        click.echo(as_json(report.as_dict()))
    else:
        for k in report.kinds:
            version = f" v{k.version}" if k.version is not None else ""
            click.echo(clean(f"{k.kind}{version}: {k.status} ({k.reason})"))
        click.echo(f"failure patterns: {report.patterns}")
    if report.kinds and all(k.status == "locked" for k in report.kinds):
        fail("training_locked: another training is running; try again when it has finished", code=1)


# --- hive insights ------------------------------------------------------------------------------------------
@main.command()
@click.option("--json", "json_out", is_flag=True, help="Print the patterns and recommendations as JSON.")
def insights(json_out) -> None:
    """The failure patterns found in the recent attempts, and what the hive recommends."""
    setup_django()
    from ml.selectors import insights_current, insights_dict

    found = insights_current()
    if json_out:
        click.echo(as_json(insights_dict(found)))
        return
    click.echo(f"{len(found.patterns)} failure pattern(s) in the last {found.attempts} attempts")
    if found.patterns:
        rows = [
            (p.pool, p.task_type, f"{p.failures}/{p.attempts}", _percent(p.rate), f"{p.lift:.1f}", p.signature)
            for p in found.patterns
        ]
        click.echo(table(["POOL", "TYPE", "FAILED", "RATE", "LIFT", "ERROR"], rows))
    if found.recommendations:
        click.echo("recommendations:")
        for r in found.recommendations:
            click.echo(f"  - {clean(r.text)}")


# --- hive decisions -----------------------------------------------------------------------------------------
@main.command()
@click.option("--task", "task_id", help="One task's decision, with every candidate (id or its first 8 characters).")
@click.option("--pool", help="Only decisions that chose this pool.")
@click.option("--strategy", help="Only decisions of this strategy (predictive, least_loaded, …).")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "json_out", is_flag=True, help="Print a JSON array of the decisions.")
def decisions(task_id, pool, strategy, limit, json_out) -> None:
    """Why tasks went where they went: strategy, pool, confidence, model, fallback, and the outcome."""
    setup_django()
    from agents.models import AgentPool
    from coordination.errors import HiveError
    from coordination.services import task_get
    from ml.selectors import decision_dict, decisions_visible_to

    task = None
    if task_id:
        try:
            task = task_get(task_id)
        except HiveError as exc:
            fail(f"{exc.code}: {exc.detail}")
    if pool and not AgentPool.objects.filter(name=pool).exists():
        fail(f"not_found: no pool {pool!r}")
    found = decisions_visible_to(
        team_id=None, staff=True, task=str(task.id) if task else None, pool=pool, strategy=strategy
    )
    rows = [decision_dict(d) for d in found[:limit]]
    if json_out:
        click.echo(as_json(rows))
        return
    if task is not None and not rows:
        fail(f"not_found: task {task.short_id} has no routing decision", code=1)
    listing = [
        (
            d["decided_at"].astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            d["task"][:8],
            d["strategy"],
            d["pool"] or "-",
            _percent(d["confidence"]),
            d["model_version"] or "-",
            d["fallback"] or "-",
            _outcome(d["outcome"]),
        )
        for d in rows
    ]
    click.echo(table(["TIME", "TASK", "STRATEGY", "POOL", "CONFIDENCE", "MODEL", "FALLBACK", "OUTCOME"], listing))
    if task is not None:
        _candidates(rows[0])


def _outcome(outcome: dict[str, Any] | None) -> str:
    if outcome is None:
        return "open"
    verdict = {True: "succeeded", False: "failed", None: "ended"}[outcome["success"]]
    return f"{verdict} in {span(outcome['duration'])}" if outcome["duration"] is not None else verdict


def _candidates(decision: dict[str, Any]) -> None:
    if decision["reason"]:
        click.echo(f"reason: {clean(decision['reason'])}")
    if decision["predicted_seconds"] is not None:
        click.echo(
            f"predicted: {span(decision['predicted_seconds'])} (p90 {span(decision['predicted_p90'])}), "
            f"success {_percent(decision['predicted_success'])}"
        )
    candidates = decision["candidates"]
    if not candidates:
        return
    rows = [
        (
            c.get("pool"),
            c.get("score"),
            span(c.get("p50")),
            span(c.get("p90")),
            _percent(c.get("success")),
            span(c.get("wait")),
            _percent(c.get("win_share")),
        )
        for c in candidates
    ]
    click.echo(table(["CANDIDATE", "SCORE", "P50", "P90", "SUCCESS", "WAIT", "BEST IN"], rows))
