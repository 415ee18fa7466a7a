"""The fan-out's fast paths: a coroutine started at once (eager.py), leases renewed together
(connections.hold)."""

from __future__ import annotations

import asyncio
import contextvars
import logging

from external_api.streaming import connections, eager

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="caller")


def test_a_coroutine_that_never_waits_runs_to_its_end_before_start_returns():
    steps: list[str] = []

    async def work() -> None:
        steps.append("ran")

    async def scenario():
        task = eager.start(work(), "test")
        return task, list(steps)

    task, seen = asyncio.run(scenario())
    assert task is None and seen == ["ran"]


def test_a_coroutine_that_waits_goes_on_as_a_task_from_where_it_waited():
    steps: list[str] = []

    async def work(gate: asyncio.Future) -> str:
        steps.append("before")
        steps.append(await gate)
        await asyncio.sleep(0)  # a bare yield on the way is passed through too
        steps.append("after")
        return "done"

    async def scenario():
        gate = asyncio.get_running_loop().create_future()
        task = eager.start(work(gate), "test")
        started = list(steps)
        gate.set_result("opened")
        await task
        return started

    started = asyncio.run(scenario())
    assert started == ["before"] and steps == ["before", "opened", "after"]


def test_cancelling_the_task_reaches_the_coroutine():
    seen: list[str] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def scenario():
        task = eager.start(work(), "test")
        assert task is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task.cancelled()

    assert asyncio.run(scenario()) is True
    assert seen == ["cancelled"]


def test_context_variables_set_by_the_coroutine_stay_its_own():
    async def work(gate: asyncio.Future) -> None:
        marker.set("coroutine")
        await gate
        assert marker.get() == "coroutine"  # the task goes on in the same context

    async def scenario():
        gate = asyncio.get_running_loop().create_future()
        task = eager.start(work(gate), "test")
        outside = marker.get()
        gate.set_result(None)
        await task
        return outside

    assert asyncio.run(scenario()) == "caller"


def test_a_failure_is_logged_before_and_after_a_wait(caplog):
    async def fails_at_once() -> None:
        raise ValueError("at once")

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise ValueError("later")

    async def scenario():
        assert eager.start(fails_at_once(), "stream %s", "one") is None
        task = eager.start(fails_later(), "stream %s", "two")
        await task

    with caplog.at_level(logging.ERROR, logger="external_api.streaming.eager"):
        asyncio.run(scenario())
    messages = [(r.getMessage(), str(r.exc_info[1])) for r in caplog.records]
    assert messages == [("stream one failed", "at once"), ("stream two failed", "later")]


def test_held_leases_are_renewed_together_and_dropped_ones_are_not(monkeypatch):
    renewed: list[tuple[str, ...]] = []

    async def renew(*leases: str) -> None:
        renewed.append(tuple(sorted(leases)))
        held.leases.clear()  # one round is enough: the loop ends when nothing is held

    monkeypatch.setattr(connections, "renew", renew)
    monkeypatch.setattr(connections, "LEASE_SECONDS", 0.03)

    async def scenario():
        global held
        for lease in ("a", "b", "c"):
            connections.hold(lease)
        connections.drop("b")
        held = connections._held[asyncio.get_running_loop()]
        await held.renewer

    asyncio.run(scenario())
    assert renewed == [("a", "c")]


held: connections._Held
