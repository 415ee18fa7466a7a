"""The hive's files are closed to other users: secrets are 0600 from their first byte, and a pool
worker's start closes var/ (passable to the workspaces only) and the SQLite files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hive_project.paths import protect_private_files, write_private


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.lstat().st_mode))


def test_write_private_creates_a_0600_file_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        write_private(tmp_path / "admin-password", "pw\n")
        (tmp_path / "loose").write_text("x")
        (tmp_path / "loose").chmod(0o666)
        write_private(tmp_path / "loose", "rewritten")  # an existing file is closed too
    finally:
        os.umask(old)
    assert mode(tmp_path / "admin-password") == "0o600" and (tmp_path / "admin-password").read_text() == "pw\n"
    assert mode(tmp_path / "loose") == "0o600" and (tmp_path / "loose").read_text() == "rewritten"


def test_the_settings_secret_files_are_0600():
    from django.conf import settings

    for name in ("secret_key", "jwt_signing_key"):
        path = settings.VAR_DIR / name
        assert path.exists() and mode(path) == "0o600", name


def test_protect_private_files_closes_var_but_keeps_the_way_to_the_workspaces(tmp_path, monkeypatch):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    monkeypatch.setenv("LEANVIBE_VAR_DIR", str(var))
    database = var / "hive.sqlite3"
    for path in (database, var / "hive.sqlite3-wal", var / "celerybeat-schedule"):
        path.write_text("rows")
        path.chmod(0o644)
    (var / "prometheus").mkdir(mode=0o755)
    outside = tmp_path / "elsewhere.sqlite3"  # a SQLite database outside var/
    outside.write_text("rows")
    outside.chmod(0o644)
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)},
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(outside)},
    }

    assert protect_private_files(databases) == []

    assert mode(var) == "0o711" and mode(var / "workspaces") == "0o711"
    assert mode(var / "logs") == "0o700" and mode(var / "prometheus") == "0o700"
    for path in (database, var / "hive.sqlite3-wal", var / "celerybeat-schedule", outside):
        assert mode(path) == "0o600", path


def test_pool_worker_start_closes_the_database_file_and_var(hive, runner_user):
    from django.conf import settings

    from hive_project.paths import sqlite_files

    files = [p for p in sqlite_files(settings.DATABASES) if p.exists()]  # none on PostgreSQL
    for path in [*files, settings.VAR_DIR]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # as a umask leaves what pytest or migrate created

    hive.worker("backend")

    for path in files:
        assert mode(path) == "0o600", path
    assert mode(settings.VAR_DIR) == "0o711"
