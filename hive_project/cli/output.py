"""Plain-text tables and times for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import click
from django.utils import timezone

STATUS_COLOURS = {
    "succeeded": "green", "failed": "red", "dead": "red", "cancelled": "yellow", "running": "cyan",
    "queued": "blue", "online": "green", "offline": "red", "draining": "yellow",
    "waiting": "blue", "timed_out": "red", "no_consensus": "yellow",
}  # fmt: skip


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(click.unstyle(r[i])) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c + " " * (w - len(click.unstyle(c))) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def status(text: str) -> str:
    return click.style(text, fg=STATUS_COLOURS.get(text))


def ago(when: datetime | None) -> str:
    if when is None:
        return "-"
    seconds = (timezone.now() - when).total_seconds()
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
