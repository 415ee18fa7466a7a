"""Backup, wipe, restore: tasks, attempts and events come back identical (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import tarfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from agents.models import Agent
from coordination.fleet import agent_register
from coordination.models import Event, Task, TaskAttempt
from coordination.results import AttemptResult
from coordination.services import attempt_finish, task_claim, task_submit
from hive_project.operations.backup import BackupError, backup_check, backup_create, backup_restore, models_dir


def _snapshot() -> dict[str, list]:
    return {
        "tasks": list(Task.objects.order_by("id").values()),
        "attempts": list(TaskAttempt.objects.order_by("id").values()),
        "events": list(Event.objects.order_by("id").values()),
    }


@pytest.fixture
def history(live_pools):
    agent = agent_register(name="backend@backup", pool=live_pools["backend"], host="h", pid=1, concurrency=1)
    Agent.objects.filter(id=agent.id).update(status=Agent.Status.OFFLINE)  # a stopped hive
    for n in range(3):
        task = task_submit(command=["echo", str(n)], capabilities=["python"], prompt="", task_type="backup")
        attempt = task_claim(task_id=str(task.id), agent=agent, pid=1, host="h")
        attempt_finish(
            attempt_id=attempt.id,
            result=AttemptResult(outcome="succeeded", exit_code=0, output_tail=f"line {n}", cost_usd=Decimal("0.25")),
        )
    task_submit(command=["sleep", "1"], capabilities=["python"])  # one still queued
    return _snapshot()


@pytest.fixture
def models(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("LEANVIBE_VAR_DIR", str(tmp_path / "var"))
    directory = models_dir()
    directory.mkdir(parents=True)
    (directory / "duration-1.joblib").write_bytes(b"model bytes")
    return directory


@pytest.mark.django_db(transaction=True)
def test_backup_wipe_restore_brings_back_tasks_attempts_events_and_models(history, models, tmp_path):
    report = backup_create(to=tmp_path / "backups")
    assert report.path.stat().st_mode & 0o777 == 0o600
    Event.objects.all().delete()
    TaskAttempt.objects.all().delete()
    Task.objects.all().delete()
    (models / "duration-1.joblib").unlink()
    assert _snapshot() != history

    manifest = backup_restore(archive=report.path)

    assert manifest["engine"] in ("sqlite", "postgresql")
    assert _snapshot() == history
    assert (models / "duration-1.joblib").read_bytes() == b"model bytes"
    assert Task.objects.filter(status="succeeded").count() == 3


@pytest.mark.django_db(transaction=True)
def test_restore_of_a_damaged_backup_changes_nothing(history, models, tmp_path):
    report = backup_create(to=tmp_path / "backups")
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(report.path) as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.startswith("database"):
                data = data[:-1] + bytes([data[-1] ^ 0xFF])  # one byte flipped
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    Task.objects.filter(status="queued").delete()
    before = _snapshot()

    with pytest.raises(BackupError, match="checksum of database.* does not match"):
        backup_restore(archive=damaged)

    assert _snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_running_hive_unless_forced(history, models, tmp_path):
    report = backup_create(to=tmp_path / "backups")
    Agent.objects.update(status=Agent.Status.ONLINE, last_heartbeat=timezone.now())
    Task.objects.filter(status="queued").delete()

    with pytest.raises(BackupError, match="the hive is running .*agents online: backend@backup"):
        backup_restore(archive=report.path)
    assert Task.objects.count() == 3

    backup_restore(archive=report.path, force=True)
    assert Task.objects.count() == 4


def test_backup_check_refuses_what_is_not_a_backup(tmp_path: Path):
    bogus = tmp_path / "bogus.tar.gz"
    with tarfile.open(bogus, "w:gz") as tar:
        data = json.dumps({"format": "something else"}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BackupError, match="has no agent-hive-backup/1 manifest"):
        backup_check(bogus)
    with pytest.raises(BackupError, match="no backup at"):
        backup_check(tmp_path / "absent.tar.gz")
