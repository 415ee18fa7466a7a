"""A small real agent program that is not Claude Code and says what it spent, as other CLIs do.

`python3 -m tests.priced_agent "<prompt>"`: prints a few lines of work, then its cost in USD, in
the form the prompt's first word names: "json 0.42" ends with a JSON object
`{"usage": {"cost_usd": 0.42}}` (plus a later JSON line without the field), "text 0.42" with a
line `Total cost: $0.42`, anything else prints no cost at all.
"""

import json
import sys

words = (sys.argv[1] if len(sys.argv) > 1 else "").split()
form, amount = (words + ["", ""])[:2]

print(f"working on: {' '.join(words)}", flush=True)
print("Total cost: $n/a so far", flush=True)  # not a number: passed over
if form == "json":
    print(json.dumps({"event": "done", "usage": {"input_tokens": 1200, "cost_usd": float(amount)}}), flush=True)
    print(json.dumps({"event": "bye"}), flush=True)
elif form == "text":
    print(f"Total cost: ${amount}", flush=True)
print("finished", flush=True)
