"""Two beats evaluating at the same moment, as real processes on the database under test: one acts."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.utils import timezone

from agents.models import Agent
from coordination.models import ScalingDecision
from coordination.services import task_submit
from tests.conftest import ROOT, child_env, purge_broker

pytestmark = pytest.mark.integration

BEAT = """
import os, time, django
django.setup()
from coordination.scaling.services import scaling_evaluate
time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))
print(len(scaling_evaluate()), flush=True)
"""


def test_two_beats_at_once_only_one_acts(live_pools):
    purge_broker()
    Agent.objects.create(name="backend@test", pool=live_pools["backend"], last_heartbeat=timezone.now())
    for _ in range(4):
        task_submit(capabilities=["python"], command=["true"])
    env = child_env(
        DJANGO_SETTINGS_MODULE="hive_project.settings",
        START_AT=str(time.time() + 6),  # both processes are set up well before then
        LEANVIBE_SCALING_STRATEGIES_SCALE_DOWN_MIN_INSTANCES="0",
        LEANVIBE_MULTI_AGENT_MIN_AGENTS="0",
    )

    beats = [
        subprocess.Popen(
            [sys.executable, "-c", BEAT], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [beat.communicate(timeout=60) for beat in beats]

    assert [beat.returncode for beat in beats] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sorted(int(out.strip()) for out, _ in outputs) == [0, 4]
    decided = {d.pool.name: (d.previous, d.desired) for d in ScalingDecision.objects.select_related("pool")}
    assert decided == {"backend": (1, 2), "frontend": (1, 0), "infrastructure": (1, 0), "ios": (1, 0)}


RACER = """
import os, time, django
django.setup()
from django.utils import timezone
from coordination.leases import lease_acquire, lease_holder
start = float(os.environ["START_AT"])
for round in range(int(os.environ["ROUNDS"])):
    time.sleep(max(0.0, start + round * 0.25 - time.time()))
    won = lease_acquire(name=f"race-{round}", holder=lease_holder(), ttl=60, now=timezone.now())
    print(int(won), flush=True)
"""


def test_lease_race_has_one_winner_per_round(transactional_db):
    rounds = 12
    env = child_env(DJANGO_SETTINGS_MODULE="hive_project.settings", START_AT=str(time.time() + 6), ROUNDS=str(rounds))

    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [racer.communicate(timeout=60) for racer in racers]

    assert [racer.returncode for racer in racers] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    wins = [[int(line) for line in out.split()] for out, _ in outputs]
    assert [sum(column) for column in zip(*wins, strict=True)] == [1] * rounds
