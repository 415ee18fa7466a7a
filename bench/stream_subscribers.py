"""One subscriber process of scenario 4: N WebSocket subscribers of /ws/events/, in a process of
their own, so the subscribers' work is spread over several processes as real clients' would be.

    python -m bench.stream_subscribers URL N K

Talks to the bench over stdin/stdout, one JSON object a line:
- out `{"ready": connected, "failed": n, "failures": [sample]}` once every connection was tried;
- out `{"arrivals": {seq: [first, last, count]}, "dropped": n, ...}` when every connected subscriber
  has events 0..K-1, or when the bench writes `stop` (then what arrived so far).

Arrival times are `time.time()` taken as each frame is read: one machine, one clock, so they
compare with the publisher's. Needs only `websockets`, not Django.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

WAVE = 50  # connections opened at once, so the server's listen backlog never overflows


async def main(url: str, n: int, k: int) -> None:
    import websockets

    arrivals: dict[int, list[float]] = {}  # seq -> [first, last, count]
    ready = 0
    closed = 0  # subscribers that failed, before their welcome or after
    settled = 0  # subscribers that were welcomed or failed before it
    failures: list[str] = []
    complete = asyncio.Event()
    done_subscribers = 0

    async def subscriber() -> None:
        nonlocal ready, closed, settled, done_subscribers
        welcomed = False
        try:
            async with websockets.connect(
                url, open_timeout=60, max_queue=None, ping_interval=None, compression=None
            ) as ws:
                welcome = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if welcome.get("type") != "welcome":
                    closed += 1
                    settled += 1
                    failures.append(f"first frame {welcome.get('type')!r}")
                    return
                ready += 1
                settled += 1
                welcomed = True
                mine: set[int] = set()
                while True:
                    frame = await ws.recv()
                    now = time.time()
                    for event in json.loads(frame).get("events") or ():
                        seq = (event.get("payload") or {}).get("seq")
                        if seq is None or seq < 0 or seq in mine:
                            continue
                        mine.add(seq)
                        seen = arrivals.get(seq)
                        if seen is None:
                            arrivals[seq] = [now, now, 1]
                        else:
                            seen[0], seen[1], seen[2] = min(seen[0], now), max(seen[1], now), seen[2] + 1
                    if len(mine) == k:
                        done_subscribers += 1
                        if done_subscribers == ready and connecting_done.is_set():
                            complete.set()
                        await asyncio.Future()  # stay connected until the bench stops us
        except Exception as exc:  # refused handshake, closed, timed out: counted and sampled
            closed += 1
            settled += 0 if welcomed else 1
            failures.append(f"{exc.__class__.__name__}: {exc}"[:200])

    connecting_done = asyncio.Event()
    tasks: list[asyncio.Task] = []
    for start in range(0, n, WAVE):
        tasks += [asyncio.create_task(subscriber()) for _ in range(min(WAVE, n - start))]
        while settled < len(tasks):  # each one connects or fails within its timeouts
            await asyncio.sleep(0.02)
    connecting_done.set()
    connected = ready
    print(json.dumps({"ready": connected, "failed": settled - connected, "failures": failures[:3]}), flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = asyncio.ensure_future(reader.readline())
    finished = asyncio.ensure_future(complete.wait())
    await asyncio.wait([stop, finished], return_when=asyncio.FIRST_COMPLETED)
    result = {
        "connected": connected,
        "dropped": closed - (settled - connected),  # welcomed, then closed
        "failures": failures[:3],
        "arrivals": {seq: [round(a, 6), round(b, 6), c] for seq, (a, b, c) in arrivals.items()},
    }
    print(json.dumps(result), flush=True)
    for task in (*tasks, stop, finished):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = int(sys.argv[2]) + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
