"""What the models learn from: finished attempts joined to their tasks, and how rows become numbers.

Rows come from the database's own history (`history`), one per finished attempt, oldest first:
pool, agent, task type, capabilities, priority, complexity, prompt length, source, hour of day
and day of week (UTC) of the start, and the pool's load at the start (attempts of that pool
running at that instant, from the attempts table itself). Targets: the attempt's duration in
seconds and whether it succeeded.

`FeatureSpec` turns rows into a float matrix: categorical columns as small integer codes (the
most frequent values first; unseen values become NaN, which the models treat as missing),
numbers as they are, capabilities as one 0/1 column each for the most common ones. The same spec
encodes training rows and, later, the rows of a task being routed; it is saved with the model.

numpy is imported inside functions: this module is imported where tasks are submitted, never
needed by pool workers.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import F
from django.db.models.functions import Length, Substr

from coordination.models import Priority, TaskAttempt

if TYPE_CHECKING:
    import numpy as np

CATEGORICAL = ("pool", "agent", "task_type", "source", "pool_type")
NUMERIC = ("priority", "complexity", "prompt_length", "hour", "weekday", "pool_load", "n_capabilities")
MAX_CATEGORIES = 250  # histogram gradient boosting takes category codes below max_bins (255)
MAX_CAPABILITIES = 24
PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}
# Outcomes that say nothing about the pool: a cancelled attempt was stopped by someone, a running
# one has no end yet.
LEARNABLE = [
    o for o in TaskAttempt.Outcome.values if o not in (TaskAttempt.Outcome.CANCELLED, TaskAttempt.Outcome.RUNNING)
]


@dataclass
class History:
    """Finished attempts, oldest first, as columns (lists of equal length)."""

    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns.get("attempt_id", []))

    def __getitem__(self, name: str) -> list[Any]:
        return self.columns[name]

    def take(self, indices: Sequence[int]) -> History:
        return History({name: [values[i] for i in indices] for name, values in self.columns.items()})

    def split(self, *, held_out: float = 0.2, minimum: int = 10) -> tuple[History, History]:
        """Time-ordered split: the older part to train on, the newest part to evaluate on."""
        n = len(self)
        cut = n - max(minimum, int(round(n * held_out)))
        return self.take(range(cut)), self.take(range(cut, n))


def history(*, limit: int | None = None, since: datetime | None = None, until: datetime | None = None) -> History:
    """The most recent `limit` finished attempts (cancelled ones left out), oldest first.

    The pool load of each row is counted among the attempts read, so it is exact except for the
    oldest rows of the window, whose overlapping predecessors may lie outside it.
    """
    rows = TaskAttempt.objects.filter(finished_at__isnull=False, outcome__in=LEARNABLE, task__pool__isnull=False)
    if since is not None:
        rows = rows.filter(started_at__gt=since)
    if until is not None:
        rows = rows.filter(started_at__lte=until)
    rows = rows.order_by("-id")
    names = (
        "attempt_id",
        "pool",
        "agent",
        "task_type",
        "capabilities",
        "priority",
        "complexity",
        "prompt_length",
        "source",
        "started_at",
        "finished_at",
        "outcome",
        "exit_code",
        "error",
        "timeout",
    )
    values = rows.values_list(
        "id",
        F("task__pool__name"),
        F("agent__name"),
        "task__task_type",
        "task__capabilities",
        "task__priority",
        "task__complexity",
        Length("task__prompt"),
        "task__source",
        "started_at",
        "finished_at",
        "outcome",
        "exit_code",
        Substr("error", 1, 500),
        "task__timeout",
    )
    fetched = list(values[:limit] if limit else values)
    fetched.sort(key=lambda r: (r[9], r[0]))
    columns: dict[str, list[Any]] = {name: [r[i] for r in fetched] for i, name in enumerate(names)}
    columns["agent"] = [a or "" for a in columns["agent"]]
    columns["prompt_length"] = [n or 0 for n in columns["prompt_length"]]
    columns["error"] = [e or "" for e in columns["error"]]
    columns["duration"] = [
        max(0.0, (f - s).total_seconds()) for s, f in zip(columns["started_at"], columns["finished_at"], strict=True)
    ]
    columns["success"] = [o == TaskAttempt.Outcome.SUCCEEDED for o in columns["outcome"]]
    columns["pool_load"] = pool_loads(columns["pool"], columns["started_at"], columns["finished_at"])
    return History(columns)


def pool_loads(pools: Sequence[str], starts: Sequence[datetime], ends: Sequence[datetime | None]) -> list[int]:
    """For each attempt, how many other attempts of its pool were running when it started."""
    by_pool: dict[str, tuple[list[float], list[float]]] = {}
    for pool, start, end in zip(pools, starts, ends, strict=True):
        s, e = by_pool.setdefault(pool, ([], []))
        s.append(start.timestamp())
        e.append(end.timestamp() if end is not None else math.inf)
    for s, e in by_pool.values():
        s.sort()
        e.sort()
    loads = []
    for pool, start in zip(pools, starts, strict=True):
        s, e = by_pool[pool]
        t = start.timestamp()
        # started strictly before t, minus those already finished by t
        loads.append(max(0, bisect.bisect_left(s, t) - bisect.bisect_right(e, t)))
    return loads


def history_rows(h: History) -> dict[str, list[Any]]:
    """The model input columns of a History (hour and weekday of each start, in UTC)."""
    return {
        "pool": h["pool"],
        "agent": h["agent"],
        "task_type": h["task_type"],
        "source": h["source"],
        "capabilities": h["capabilities"],
        "priority": h["priority"],
        "complexity": h["complexity"],
        "prompt_length": h["prompt_length"],
        "hour": [s.hour for s in h["started_at"]],
        "weekday": [s.weekday() for s in h["started_at"]],
        "pool_load": h["pool_load"],
    }


def task_rows(
    *,
    pools: Sequence[str],
    task_type: str,
    capabilities: Sequence[str],
    priority: str,
    complexity: int | None,
    prompt_length: int,
    source: str,
    loads: Sequence[int],
    at: datetime,
    agent: str = "",
) -> dict[str, list[Any]]:
    """Model input columns for one task on each of `pools` (the agent is unknown before a claim)."""
    n = len(pools)
    return {
        "pool": list(pools),
        "agent": [agent] * n,
        "task_type": [task_type] * n,
        "source": [source] * n,
        "capabilities": [list(capabilities)] * n,
        "priority": [priority] * n,
        "complexity": [complexity] * n,
        "prompt_length": [prompt_length] * n,
        "hour": [at.hour] * n,
        "weekday": [at.weekday()] * n,
        "pool_load": list(loads),
    }


@dataclass
class FeatureSpec:
    """How rows become a float matrix; fitted on training rows and saved with the model."""

    vocab: dict[str, dict[str, int]]
    capabilities: list[str]

    @property
    def columns(self) -> list[str]:
        return [*CATEGORICAL, *NUMERIC, *(f"cap:{c}" for c in self.capabilities)]

    @property
    def categorical(self) -> list[bool]:
        return [name in CATEGORICAL for name in self.columns]

    def encode(
        self, rows: Mapping[str, Sequence[Any]], *, mask_agent: Sequence[bool] | np.ndarray | None = None
    ) -> np.ndarray:
        """A (rows × columns) float64 matrix. `mask_agent` hides the agent of chosen rows (NaN)."""
        import numpy as np

        n = len(rows["pool"])
        out = np.full((n, len(self.columns)), np.nan, dtype=np.float64)
        pool_type = [f"{p}|{t}" for p, t in zip(rows["pool"], rows["task_type"], strict=True)]
        for j, name in enumerate(CATEGORICAL):
            values = pool_type if name == "pool_type" else rows[name]
            codes = self.vocab[name]
            out[:, j] = [codes.get(v, math.nan) for v in values]
        if mask_agent is not None:
            out[np.asarray(mask_agent, dtype=bool), CATEGORICAL.index("agent")] = np.nan
        base = len(CATEGORICAL)
        out[:, base + 0] = [PRIORITY_RANK.get(p, 1) for p in rows["priority"]]
        out[:, base + 1] = [math.nan if c is None else c for c in rows["complexity"]]
        out[:, base + 2] = rows["prompt_length"]
        out[:, base + 3] = rows["hour"]
        out[:, base + 4] = rows["weekday"]
        out[:, base + 5] = rows["pool_load"]
        caps = rows["capabilities"]
        out[:, base + 6] = [len(c or ()) for c in caps]
        base += len(NUMERIC)
        for j, cap in enumerate(self.capabilities):
            out[:, base + j] = [1.0 if cap in (c or ()) else 0.0 for c in caps]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "capabilities": self.capabilities}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(vocab={k: dict(v) for k, v in data["vocab"].items()}, capabilities=list(data["capabilities"]))


def fit_spec(rows: Mapping[str, Sequence[Any]]) -> FeatureSpec:
    """Vocabularies of the training rows: the most frequent values get the small codes."""
    vocab = {}
    pool_type = [f"{p}|{t}" for p, t in zip(rows["pool"], rows["task_type"], strict=True)]
    for name in CATEGORICAL:
        values = pool_type if name == "pool_type" else rows[name]
        counts = Counter(v for v in values if v)
        ranked = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_CATEGORIES]
        vocab[name] = {v: i for i, v in enumerate(ranked)}
    caps = Counter(c for cs in rows["capabilities"] for c in (cs or ()))
    capabilities = sorted(caps, key=lambda c: (-caps[c], c))[:MAX_CAPABILITIES]
    return FeatureSpec(vocab=vocab, capabilities=capabilities)
