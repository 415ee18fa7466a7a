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
    return asyncio.get_running_loop().create_task(_Continued(coroutine, waiting_on, what, args), context=context)


class _Continued(Coroutine[Any, Any, None]):
    """A started coroutine, as a task's coroutine: the task's first step hands over the future
    the coroutine waits on (as the coroutine's own `await` did), every later step and every
    exception thrown in (a cancellation, even one that comes before the task's first step) goes
    to the coroutine. A failure ends it with a log line, as a background task's would."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any, what: str, args: tuple) -> None:
        self.coroutine, self.waiting_on, self.what, self.args = coroutine, waiting_on, what, args
        self.started = False

    def send(self, value: Any) -> Any:
        if not self.started:
            self.started = True
            return self.waiting_on
        return self._step(self.coroutine.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.started = True
        return self._step(self.coroutine.throw, typ if val is None else val)

    def close(self) -> None:
        self.coroutine.close()

    def __await__(self) -> Generator[Any, None, None]:  # the abstract method; a task never calls it
        return (yield from ())

    def _step(self, step: Any, value: Any) -> Any:
        try:
            return step(value)
        except (StopIteration, asyncio.CancelledError):
            raise
        except Exception:
            log.exception(self.what + " failed", *self.args)
            raise StopIteration from None
