"""What a runner reports about one attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class AttemptResult:
    outcome: str  # a TaskAttempt.Outcome value
    exit_code: int | None = None
    error: str = ""
    permanent: bool = False  # a failure that another attempt cannot fix (program missing, bad argv)
    is_error: bool = False
    result: Any = None
    session_id: str = ""
    cost_usd: Decimal | None = None
    num_turns: int | None = None
    output_tail: str = ""
    # The attempt does not count (the provider refused it for rate): the task is queued again after
    # this many seconds with its attempt budget intact.
    requeue_after: float | None = None
    extra: dict = field(default_factory=dict)
