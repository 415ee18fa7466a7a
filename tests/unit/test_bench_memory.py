"""The bench's memory sampler counts one address space once (bench/memory.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

from bench.memory import same_address_space


def test_a_thread_shares_the_address_space_a_forked_child_does_not() -> None:
    ready, done = threading.Event(), threading.Event()
    ids: list[int] = []

    def run() -> None:
        ids.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait(10)
    child = os.fork()
    if child == 0:  # the forked child: its own copy-on-write address space
        time.sleep(30)
        os._exit(0)
    try:
        assert same_address_space(ids[0], os.getpid())  # the kernel's view of one memory map
        assert not same_address_space(child, os.getpid())
    finally:
        done.set()
        thread.join()
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
