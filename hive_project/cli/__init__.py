"""The `hive` command. It works on this machine's database directly through the services, as the
API and webhooks do; `hive up` starts and supervises every process of the hive."""

from __future__ import annotations

import os
import sys

import click


def setup_django() -> None:
    """Load settings (a bad configuration exits with its one-line error) and Django."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
    import django

    django.setup()


def fail(message: str, code: int = 2) -> None:
    click.echo(f"hive: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Agent Hive: route tasks to pools of coding agents and run them on Celery workers."""


def _register() -> None:
    from hive_project.cli import accounts, bench, commands, demo, sessions, up, webhooks  # noqa: F401  (commands attach to `main`)


_register()

if __name__ == "__main__":
    main()
