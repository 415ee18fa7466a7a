"""Backups of one hive: a consistent copy of the database, the effective configuration and the
model artifacts, in one archive with a manifest of checksums; and putting them back.

The database copy is consistent while the hive runs: SQLite's online backup API copies pages
under a read transaction, `pg_dump` reads one snapshot. A restore checks every checksum before it
writes anything, and refuses to write over a hive that is running (live agents, or `hive up`'s
pid file) unless forced.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import connection

from hive_project.paths import var_dir

FORMAT = "agent-hive-backup/1"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
POSTGRES_MEMBER = "database.pgdump"
CONFIG_MEMBER = "config.effective.yaml"
MODELS_PREFIX = "models/"
_SECRET_NAME = ("secret", "password", "token", "api_key", "signing_key", "client_id")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why in one line."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    files: int
    size: int
    engine: str


def models_dir() -> Path:
    return var_dir() / "models"


def backup_create(*, to: Path | None = None, now: datetime | None = None) -> BackupReport:
    """Write `hive-backup-<UTC time>.tar.gz` into `to` (default var/backups) and return where.

    The archive is readable by its owner only: it holds prompts, results and hashed keys.
    """
    now = now or datetime.now(UTC)
    target_dir = (to or var_dir() / "backups").resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    engine = _engine()
    with tempfile.TemporaryDirectory(prefix="hive-backup-") as scratch:
        staging = Path(scratch)
        members: dict[str, Path] = {}
        if engine == "sqlite":
            members[SQLITE_MEMBER] = _sqlite_copy(staging / SQLITE_MEMBER)
        else:
            members[POSTGRES_MEMBER] = _pg_dump(staging / POSTGRES_MEMBER)
        config_file = staging / CONFIG_MEMBER
        config_file.write_text(effective_config_yaml())
        members[CONFIG_MEMBER] = config_file
        models = models_dir()
        if models.is_dir():
            for path in sorted(p for p in models.rglob("*") if p.is_file()):
                members[MODELS_PREFIX + path.relative_to(models).as_posix()] = path
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(),
            "engine": engine,
            "hive_version": _hive_version(),
            "migrations": _applied_migrations(),
            "files": {name: {"sha256": _sha256(path), "size": path.stat().st_size} for name, path in members.items()},
        }
        archive = target_dir / f"hive-backup-{now:%Y%m%dT%H%M%SZ}.tar.gz"
        partial = archive.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
            for name, path in members.items():
                tar.add(path, arcname=name, recursive=False)
        partial.replace(archive)  # a crash mid-write never leaves a file that looks complete
    return BackupReport(path=archive, files=len(members), size=archive.stat().st_size, engine=engine)


def backup_check(archive: Path) -> dict[str, Any]:
    """Read the manifest and verify every member's checksum; the manifest, or BackupError naming the first problem."""
    manifest, _ = _open_checked(archive, extract_to=None)
    return manifest


def backup_restore(*, archive: Path, force: bool = False) -> dict[str, Any]:
    """Replace the database and model artifacts with the archive's, after checking every checksum.

    Refuses (BackupError) when the hive is running and `force` is not given, when the archive was
    made from another database engine, or when a checksum does not match — in every case before
    anything is written.
    """
    running = hive_running()
    if running and not force:
        raise BackupError(f"the hive is running ({running}): stop it first, or pass --force")
    with tempfile.TemporaryDirectory(prefix="hive-restore-") as scratch:
        staging = Path(scratch)
        manifest, members = _open_checked(archive, extract_to=staging)
        engine = _engine()
        if manifest["engine"] != engine:
            raise BackupError(f"the backup holds a {manifest['engine']} database and this hive uses {engine}")
        connection.close()
        if engine == "sqlite":
            _sqlite_restore(members[SQLITE_MEMBER])
        else:
            _pg_restore(members[POSTGRES_MEMBER])
        models = models_dir()
        if models.is_dir():
            shutil.rmtree(models)
        for name, path in members.items():
            if name.startswith(MODELS_PREFIX):
                dest = models / name.removeprefix(MODELS_PREFIX)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
        restored_config = var_dir() / "restored-config.yaml"
        shutil.copy2(members[CONFIG_MEMBER], restored_config)
        restored_config.chmod(0o600)
    return manifest


def hive_running() -> str:
    """Why this hive counts as running ('' when it does not): live agents, or a live `hive up`."""
    from agents.models import Agent

    pid_file = var_dir() / "hive-up.pid"
    if pid_file.is_file():
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 0)
            return f"hive up is running as pid {pid}"
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            return "hive up is running under another user"
    live = list(Agent.objects.live().values_list("name", flat=True)[:3])
    return f"agents online: {', '.join(live)}" if live else ""


def effective_config_yaml() -> str:
    """The configuration the hive runs with, as YAML, with every secret masked."""
    data = settings.HIVE_CONFIG.model_dump(mode="json")
    return yaml.safe_dump(_masked(data), sort_keys=False)


def _masked(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _masked(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v, key) for v in node]
    if node not in (None, "", []) and any(word in key.lower() for word in _SECRET_NAME):
        return "***"
    return node


# --- archive --------------------------------------------------------------------------------------


def _open_checked(archive: Path, *, extract_to: Path | None) -> tuple[dict[str, Any], dict[str, Path]]:
    if not archive.is_file():
        raise BackupError(f"no backup at {archive}")
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{archive} is not a hive backup ({exc})") from None
    with tar:
        try:
            raw = tar.extractfile(MANIFEST)
            manifest = json.loads(raw.read()) if raw else None
        except (KeyError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BackupError(f"{archive} has no {FORMAT} manifest")
        files: dict[str, dict[str, Any]] = manifest["files"]
        names = {m.name for m in tar.getmembers() if m.isfile()} - {MANIFEST}
        if names != set(files):
            extra, missing = sorted(names - set(files)), sorted(set(files) - names)
            raise BackupError(f"{archive} does not match its manifest (extra {extra}, missing {missing})")
        extracted: dict[str, Path] = {}
        for name, expected in files.items():
            member = tar.getmember(name)
            source = tar.extractfile(member)
            if source is None:
                raise BackupError(f"{name} in {archive} is not a file")
            digest = hashlib.sha256()
            out = None
            if extract_to is not None:
                dest = (extract_to / name).resolve()
                if not dest.is_relative_to(extract_to.resolve()):
                    raise BackupError(f"{name} in {archive} points outside the backup")
                dest.parent.mkdir(parents=True, exist_ok=True)
                out = open(dest, "wb")  # noqa: SIM115 - closed below
                extracted[name] = dest
            try:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    if out is not None:
                        out.write(chunk)
            finally:
                if out is not None:
                    out.close()
            if digest.hexdigest() != expected["sha256"]:
                raise BackupError(f"checksum of {name} does not match the manifest: the backup is damaged")
    return manifest, extracted


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- databases ------------------------------------------------------------------------------------


def _engine() -> str:
    return "sqlite" if connection.vendor == "sqlite" else "postgresql"


def _sqlite_copy(dest: Path) -> Path:
    source = sqlite3.connect(connection.settings_dict["NAME"], timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)  # pages copied under a read transaction: a consistent snapshot
    finally:
        target.close()
        source.close()
    return dest


def _sqlite_restore(copy: Path) -> None:
    source = sqlite3.connect(copy)
    target = sqlite3.connect(connection.settings_dict["NAME"], timeout=30)
    try:
        source.backup(target)  # writes every page of the live file (and its WAL) under one lock
    finally:
        target.close()
        source.close()


def _pg_env() -> tuple[list[str], dict[str, str]]:
    db = connection.settings_dict
    args = [
        "--host",
        db["HOST"] or "localhost",
        "--port",
        str(db["PORT"] or 5432),
        "--username",
        db["USER"] or "postgres",
    ]
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return args, env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def _pg_dump(dest: Path) -> Path:
    args, env = _pg_env()
    name = connection.settings_dict["NAME"]
    done = subprocess.run(
        [_pg_tool("pg_dump"), "-Fc", "--no-owner", "--no-privileges", *args, "--file", str(dest), name],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(
            f"pg_dump failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )
    return dest


def _pg_restore(dump: Path) -> None:
    args, env = _pg_env()
    name = connection.settings_dict["NAME"]
    done = subprocess.run(
        [
            _pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            *args,
            "--dbname",
            name,
            str(dump),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(
            f"pg_restore failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )


def _applied_migrations() -> list[str]:
    from django.db.migrations.recorder import MigrationRecorder

    return sorted(f"{app}.{name}" for app, name in MigrationRecorder(connection).applied_migrations())


def _hive_version() -> str:
    from hive_project import __version__

    return __version__
