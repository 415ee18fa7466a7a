"""Plain-text tables and times for the terminal, and the cleaning of what others wrote.

Prompts, commands, errors, output and names come from whoever submitted a task or configured a
source. Printed as they are, an escape sequence in a prompt could retitle the terminal (OSC), move
the cursor or clear the screen (CSI), and a newline could forge a table row. `clean` removes every
terminal control from such text; `table` cleans every cell it did not style itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import click
from django.utils import timezone

# Order matters: string sequences first (their payload may hold anything up to the terminator, or
# the end of the line when there is none), then CSI, then any other escape, then the single
# control characters left.
_SEQUENCES = re.compile(
    r"""
    (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|(?=\n)|$)  # OSC, DCS, SOS, PM, APC
    | (?:\x1b\[|\x9b) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?     # CSI (7- and 8-bit)
    | \x1b [\x20-\x2f]* [\x30-\x7e]?                               # other escapes (ESC c, ESC 7, ESC ( B…)
    """,
    re.VERBOSE | re.DOTALL,
)
# C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidirectional overrides and
# isolates, which reorder what is shown ("Trojan Source").
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\x85\u2028\u2029]")


class Styled(str):
    """Text the CLI styled itself (its own escape sequences): `table` prints it as it is."""


def clean(text: object, *, multiline: bool = False) -> str:
    """`text` without terminal controls: escape sequences (CSI, OSC, …), C0/C1 controls and bidi
    overrides removed. Line breaks are kept (as \\n) when `multiline`, else become spaces, as tabs do."""
    value = _LINE_BREAKS.sub("\n", str(text))
    value = _CONTROLS.sub("", _SEQUENCES.sub("", value))
    return value if multiline else value.replace("\n", " ").replace("\t", " ")


STATUS_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "dead": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
    "online": "green",
    "offline": "red",
    "draining": "yellow",
    "waiting": "blue",
    "timed_out": "red",
    "no_consensus": "yellow",
    "active": "red",
    "resolved": "green",
    "warning": "yellow",
    "critical": "red",
}


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under headers, aligned; one line per row whatever the cells hold (see `clean`)."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(click.unstyle(r[i])) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c + " " * (w - len(click.unstyle(c))) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, Styled) else clean(value)


def status(text: str) -> Styled:
    return Styled(click.style(clean(text), fg=STATUS_COLOURS.get(text)))


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
