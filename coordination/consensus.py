"""What a step answered, and what a consensus decided. Pure functions over stored results.

A step's *answer* is what a dependent or a vote reads: Claude Code's `result`, a Python callable's
return value, or a command's output. A *vote* is the answer normalised: the `vote` field of a JSON
answer, else its last non-empty line; trimmed and case-folded, so "Yes " and "yes" agree.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

ANSWER_MAX = 4000  # characters of an answer handed to a dependent


def answer_of(result: Any) -> Any:
    """The step's answer inside its task's result (see coordination.results and the runners)."""
    if not isinstance(result, dict):
        return result
    if "result" in result:  # Claude Code's JSON result
        return result["result"]
    if "value" in result:  # a Python callable's return value
        return result["value"]
    if "output" in result:  # a command's output
        return result["output"]
    return result


def answer_text(result: Any) -> str:
    """The answer as text for `{steps.<name>.result}`: strings trimmed, anything else as JSON."""
    answer = answer_of(result)
    if answer is None:
        return ""
    text = answer.strip() if isinstance(answer, str) else json.dumps(answer, sort_keys=True)
    return text[-ANSWER_MAX:]


def vote_of(result: Any) -> str | None:
    """The normalised vote of one participant, or None when it gave no answer."""
    answer = answer_of(result)
    if isinstance(answer, dict):
        if "vote" in answer:
            return _normal(answer["vote"])
        return _normal(json.dumps(answer, sort_keys=True))
    if answer is None:
        return None
    if not isinstance(answer, str):
        return _normal(json.dumps(answer))
    voted = _json_vote(answer)
    if voted is not None:
        return voted
    lines = [line for line in answer.splitlines() if line.strip()]
    if not lines:
        return None
    return _json_vote(lines[-1]) or _normal(lines[-1])


def _json_vote(text: str) -> str | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and "vote" in value:
        return _normal(value["vote"])
    return None


def _normal(vote: Any) -> str | None:
    text = (vote if isinstance(vote, str) else json.dumps(vote)).strip().casefold()
    return text[:500] or None


def decide(votes: Sequence[str | None], *, threshold: float) -> dict[str, Any]:
    """The decision of a consensus: the answer whose share of all participants reaches `threshold`.

    Participants that gave no answer (failed, cancelled, empty) count in the denominator: a
    decision of two out of three is two thirds, however the third ended. A tie at the top decides
    nothing. `answer` is None when no answer reached the threshold.
    """
    participants = len(votes)
    tally = Counter(v for v in votes if v)
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    answer, share = None, 0.0
    if ranked and participants:
        top, count = ranked[0]
        share = count / participants
        unique = len(ranked) == 1 or ranked[1][1] < count
        if unique and count >= threshold * participants - 1e-9:
            answer = top
    return {
        "answer": answer,
        "share": round(share, 4),
        "tally": dict(ranked),
        "participants": participants,
        "abstained": participants - sum(tally.values()),
        "threshold": threshold,
    }
