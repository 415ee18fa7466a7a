"""Running a coroutine at once, in the caller's turn of the event loop, until it first has to wait.

The fan-out hands every published event to every stream of the process. Giving each stream a task
to wake costs a scheduling round per stream per event (2,000 of them for one event), although
nearly every send finishes without waiting: the socket's buffer has room. `start` runs the
coroutine synchronously; only a coroutine that really waits (a full socket buffer, a lock held by
a replay, a database read) becomes a task, from the point where it waits, so one slow socket
still holds up only itself. This is Python 3.12's eager task execution, for 3.11; like a task,
the coroutine runs in a copy of the caller's context variables (asgiref's sync_to_async keeps
its per-task state there).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine, Generator
from typing import Any

log = logging.getLogger(__name__)


def start(coroutine: Coroutine[Any, Any, Any], what: str, *args: object) -> asyncio.Task | None:
    """Run `coroutine` now until it finishes (None) or waits (then the task that finishes it).
    An exception is logged with `what % args` (formatted only then), as a background task's would be."""
    context = contextvars.copy_context()  # its own, as a task's: what it sets stays out of the caller's
    try:
        waiting_on = context.run(coroutine.send, None)
    except StopIteration:
        return None
    except Exception:
        log.exception(what + " failed", *args)
        return None
    return asyncio.get_running_loop().create_task(_finish(coroutine, waiting_on, what, args), context=context)


async def _finish(coroutine: Coroutine[Any, Any, Any], waiting_on: Any, what: str, args: tuple) -> None:
    try:
        await _Resumed(coroutine, waiting_on)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(what + " failed", *args)


class _Resumed:
    """Awaiting this goes on with a started coroutine: first the future it was waiting on is handed
    to the task (as the coroutine's own `await` would have), then every resumption and every
    exception (a cancellation) is passed through to it."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self.coroutine, self.waiting_on = coroutine, waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self.coroutine, self.waiting_on
        while True:
            try:
                value = yield waiting_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - a cancellation goes to the coroutine, as it would have
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting_on = coroutine.send(value)
                except StopIteration as stop:
                    return stop.value
