"""A small real program that speaks Claude Code's stream-json, for runner tests without the CLI."""

import json
import sys

prompt = sys.argv[1] if len(sys.argv) > 1 else ""
print(json.dumps({"type": "system", "subtype": "init", "session_id": "sess-123"}), flush=True)
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
