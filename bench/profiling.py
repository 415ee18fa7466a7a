"""Sampling profiles of the hive's processes during a scenario, with py-spy (requirements/dev.txt).

`hive bench --profile` records the pool worker (main process and its prefork children) and the
submitting process while the full-path throughput scenario runs, keeps the raw collapsed stacks in
var/bench/ (profile-worker.txt, profile-submit.txt; flamegraph.pl or speedscope read them), and
prints where the on-CPU samples went: the functions of the hive's own code by inclusive share, and
the leaf functions by self share.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

HIVE_CODE = re.compile(r"/(coordination|agents|workers|hive_project)/[^/]")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Profiler:
    """A py-spy recorder attached to a running process; `stop()` ends it and writes the stacks."""

    def __init__(self, pid: int, output: Path, *, subprocesses: bool = False, rate: int = 200) -> None:
        # On-CPU samples only (no --idle): on a machine the bench saturates, CPU is what limits
        # throughput, and idle threads (heartbeats, the consumer waiting on Redis) would drown it.
        self.output = output
        self.proc: subprocess.Popen | None = None
        exe = str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            exe = shutil.which("py-spy") or exe
        if not Path(exe).exists():
            raise RuntimeError("py-spy is not installed (pip install -r requirements/dev.txt)")
        argv = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--nonblocking",
            "--output",
            str(output),
        ]
        if subprocesses:
            argv.append("--subprocesses")
        self.log = output.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks ("frame;frame;frame count") with line numbers dropped."""
    stacks: Counter[tuple[str, ...]] = Counter()
    if not path.exists():
        return stacks
    for line in path.read_text(errors="replace").splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = []
        for frame in body.split(";"):
            match = FRAME.match(frame)
            frames.append(f"{match['func']} ({_short(match['file'])})" if match else frame)
        stacks[tuple(frames)] += int(count)
    return stacks


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return file


def summarise(path: Path, *, focus: str | None = None, top: int = 15) -> dict:
    """Inclusive shares of the hive's functions and self shares of leaf functions, over every
    sample or, with `focus`, over the stacks that pass through that function (e.g. task_submit)."""
    stacks = read_stacks(path)
    if focus:
        stacks = Counter({f: n for f, n in stacks.items() if any(x.startswith(focus + " (") for x in f)})
    total = sum(stacks.values())
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks.items():
        for frame in set(frames):
            if HIVE_CODE.search("/" + frame.split("(", 1)[-1]):
                inclusive[frame] += count
        leaves[frames[-1]] += count

    def share(counter: Counter[str]) -> list[list]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)] if total else []

    return {
        "focus": focus or "all",
        "samples": total,
        "hive_inclusive_percent": share(inclusive),
        "self_percent": share(leaves),
    }


def render(summary: dict, title: str) -> str:
    lines = [f"{title}: {summary['samples']} on-CPU samples ({summary['focus']})"]
    lines.append("  hive code, inclusive:")
    lines += [f"    {pct:5.1f}%  {name}" for name, pct in summary["hive_inclusive_percent"]]
    lines.append("  leaf functions, self:")
    lines += [f"    {pct:5.1f}%  {name}" for name, pct in summary["self_percent"]]
    return "\n".join(lines)
