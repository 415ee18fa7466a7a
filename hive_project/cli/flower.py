"""`hive flower`: Flower, the Celery queue monitor, behind HTTP basic auth.

Flower shows every task's arguments and lets its user revoke tasks and shut workers down, so it
never runs open. The credentials come from, in this order:

1. `monitoring.flower.username` / `monitoring.flower.password` (`LEANVIBE_MONITORING_FLOWER_PASSWORD`
   or `..._PASSWORD_FILE`);
2. `FLOWER_BASIC_AUTH=user:password[,user:password]`, Flower's own variable;
3. in development only, a password generated once into `var/flower-password` (user
   `monitoring.flower.username`, default `operator`), like the admin's `var/admin-password`.

In production without 1 or 2, Flower is not started: one line says what to set. The credentials
reach Flower in its FLOWER_BASIC_AUTH environment variable, never on its command line (which any
local user can read in `ps`). `/healthcheck` and `/metrics` stay open (probes, Prometheus).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hive_project.cli import fail, main, setup_django

PASSWORD_FILE = "flower-password"


class FlowerAuthError(Exception):
    """No usable credentials; the message is one line naming what to set."""


@dataclass(frozen=True)
class FlowerAuth:
    basic_auth: str  # Flower's format: user:password[,user:password]
    source: str  # the key, the variable or the file the credentials came from
    users: tuple[str, ...]
    password_file: Path | None = None  # the generated password (development)


def flower_auth(*, config: Any, production: bool, var_dir: Path, environ: Mapping[str, str]) -> FlowerAuth:
    """The credentials Flower must require, or FlowerAuthError (production without any)."""
    flower = config.monitoring.flower
    if flower.password:
        return FlowerAuth(f"{flower.username}:{flower.password}", "monitoring.flower.password", (flower.username,))
    if environ.get("FLOWER_BASIC_AUTH", "").strip():
        value = environ["FLOWER_BASIC_AUTH"].strip()
        pairs = [pair.strip() for pair in value.split(",")]
        if not all(user and password for user, _, password in (pair.partition(":") for pair in pairs)):
            raise FlowerAuthError("FLOWER_BASIC_AUTH: expected user:password pairs separated by commas")
        return FlowerAuth(",".join(pairs), "FLOWER_BASIC_AUTH", tuple(pair.partition(":")[0] for pair in pairs))
    if production:
        raise FlowerAuthError(
            "monitoring.flower.password is empty: production runs Flower only behind a password (set "
            "LEANVIBE_MONITORING_FLOWER_PASSWORD or LEANVIBE_MONITORING_FLOWER_PASSWORD_FILE, or "
            "FLOWER_BASIC_AUTH=user:password)"
        )
    path = var_dir / PASSWORD_FILE
    if not path.exists():
        # urlsafe base64 has no ',' or ':', which Flower's format reserves
        path.write_text(secrets.token_urlsafe(18) + "\n")
        path.chmod(0o600)
    password = path.read_text().strip()
    return FlowerAuth(f"{flower.username}:{password}", str(path), (flower.username,), password_file=path)


def flower_auth_for_this_hive() -> FlowerAuth:
    """`flower_auth` for the loaded settings and this process's environment."""
    from django.conf import settings

    return flower_auth(
        config=settings.HIVE_CONFIG, production=settings.PRODUCTION, var_dir=settings.VAR_DIR, environ=os.environ
    )


def flower_environment(auth: FlowerAuth, base: Mapping[str, str]) -> dict[str, str]:
    return {**base, "FLOWER_BASIC_AUTH": auth.basic_auth}


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def flower(ctx: click.Context) -> None:
    """Run Flower with basic auth; other options go to Flower as they are (--port=5555, --address=…)."""
    setup_django()
    try:
        auth = flower_auth_for_this_hive()
    except FlowerAuthError as exc:
        fail(f"configuration error: {exc}")
    click.echo(f"flower: basic auth for {', '.join(auth.users)} (from {auth.source})", err=True)
    argv = [sys.executable, "-m", "celery", "-A", "hive_project", "flower", *ctx.args]
    sys.stdout.flush()
    sys.stderr.flush()
    # replace this process: signals from tini or `hive up` reach Flower itself
    os.execve(sys.executable, argv, flower_environment(auth, os.environ))
