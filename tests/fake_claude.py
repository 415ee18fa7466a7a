"""A small real program that speaks Claude Code's stream-json, for runner tests without the CLI.

The prompt picks the run: "turn limit" ends like `--max-turns` does (an error_max_turns result, exit
1); "overloaded once" fails the first attempt with a 529 and succeeds on the next; "fail" reports
error_during_execution; "rate limited N <file>" reports a 429 whose limit resets in a second for the
first N starts (counted in <file>, across workers), then succeeds; anything else succeeds. The failing runs print the documented shapes of
tests/claude_fixtures.py.
"""

import json
import os
import sys
import time

from tests import claude_fixtures as fixtures

prompt = sys.argv[1] if len(sys.argv) > 1 else ""
attempt = int(os.environ.get("HIVE_ATTEMPT", "1"))


def emit(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)


if "turn limit" in prompt:
    emit(fixtures.MAX_TURNS_STREAM)
    sys.exit(1)  # Claude Code exits non-zero after an error result
if prompt.startswith("rate limited "):
    _, _, times, counter = prompt.split(" ", 3)
    with open(counter, "a+") as f:  # one line per start; O_APPEND keeps concurrent starts apart
        f.write("start\n")
    with open(counter) as f:
        starts = sum(1 for _ in f)
    if starts <= int(times):
        event = fixtures.rate_limit_event("rejected", resets_at=int(time.time()) + 1, kind="five_hour")
        emit(
            [json.dumps(m) for m in (fixtures.init(), event, fixtures.api_error(429, "API Error: Rate limit reached"))]
        )
        sys.exit(1)
if "overloaded once" in prompt and attempt == 1:
    emit(fixtures.OVERLOADED_529)
    sys.exit(1)

print(
    json.dumps(
        {
            "type": "system",
            "subtype": "init",
            "session_id": "sess-123",
            "model": fixtures.MODEL,
            "tools": ["Bash", "Read"],
        }
    ),
    flush=True,
)
print(json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": f"working on: {prompt}"}]}}))
failed = "fail" in prompt
print(
    json.dumps(
        {
            "type": "result",
            "subtype": "error_during_execution" if failed else "success",
            "is_error": failed,
            "result": f"done: {prompt}",
            "session_id": "sess-123",
            "total_cost_usd": 0.0123,
            "num_turns": 4,
        }
    )
)
