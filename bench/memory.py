"""Peak memory of a process tree, sampled in a background thread while a scenario runs.

RSS counts a page shared by a forked pool child once per process; PSS splits it among them, so
the PSS sum is what the tree really costs the machine. Both are reported; the goal is on RSS.

A process that shares its parent's address space is counted once: `subprocess` starts a program
with vfork(), and until the child execs, /proc shows it with its parent's whole RSS (the same
pages, not a copy). A sample that caught one such moment added a second copy of a pool child
(~50-70 MB) to the hive or to raw Celery, whichever it happened to, and swung their ratio.
"""

from __future__ import annotations

import ctypes
import platform
import threading
from dataclasses import asdict, dataclass

import psutil

MB = 2**20


@dataclass
class MemoryPeak:
    rss_mb: float = 0.0  # main process and every descendant, summed
    main_rss_mb: float = 0.0
    pss_mb: float = 0.0
    processes: int = 0
    samples: int = 0

    def as_dict(self) -> dict:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(self).items()}


_KCMP_VM = 1  # linux/kcmp.h
_SYS_KCMP = {"x86_64": 312, "aarch64": 272}.get(platform.machine())
_libc = ctypes.CDLL(None, use_errno=True) if _SYS_KCMP is not None else None


def same_address_space(pid: int, other: int) -> bool:
    """Do the two processes share one memory map (a vfork child before its exec)? kcmp(2);
    False where it cannot tell (another architecture, no permission), so nothing is left out."""
    if _libc is None:
        return False
    return _libc.syscall(_SYS_KCMP, pid, other, _KCMP_VM, 0, 0) == 0


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def measure(pid: int, *, with_pss: bool = False) -> MemoryPeak:
    """One sample of the tree under `pid`."""
    sample = MemoryPeak(samples=1)
    for i, proc in enumerate(tree(pid)):
        try:
            if i and same_address_space(proc.pid, proc.ppid()):
                continue  # its parent's pages, already counted
            rss = proc.memory_info().rss / MB
            sample.rss_mb += rss
            sample.processes += 1
            if i == 0:
                sample.main_rss_mb = rss
            if with_pss:
                sample.pss_mb += proc.memory_full_info().pss / MB
        except psutil.Error:  # a short-lived runner child ended between listing and reading
            pass
    return sample


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by the tree under `pid`, including its children that have been reaped."""
    total = 0.0
    for proc in tree(pid):
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


class Sampler(threading.Thread):
    """Samples RSS every `interval` seconds (PSS every `pss_every` samples) until stopped."""

    def __init__(self, pid: int, *, interval: float = 0.1, pss_every: int = 10) -> None:
        super().__init__(name=f"rss-sampler-{pid}", daemon=True)
        self.pid = pid
        self.interval = interval
        self.pss_every = pss_every
        self.peak = MemoryPeak()
        self._stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._stop_event.is_set():
            sample = measure(self.pid, with_pss=n % self.pss_every == 0)
            self.peak.samples += 1
            self.peak.rss_mb = max(self.peak.rss_mb, sample.rss_mb)
            self.peak.main_rss_mb = max(self.peak.main_rss_mb, sample.main_rss_mb)
            self.peak.pss_mb = max(self.peak.pss_mb, sample.pss_mb)
            self.peak.processes = max(self.peak.processes, sample.processes)
            n += 1
            self._stop_event.wait(self.interval)

    def __enter__(self) -> Sampler:
        self.cpu_start = cpu_seconds(self.pid)
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cpu_used = cpu_seconds(self.pid) - self.cpu_start
        self._stop_event.set()
        self.join(timeout=5)
