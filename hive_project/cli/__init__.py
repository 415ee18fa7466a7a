"""The `hive` command. It works on this machine's database directly through the services, as the
API and webhooks do; `hive up` starts and supervises every process of the hive."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click


def setup_django() -> None:
    """Load settings (a bad configuration exits with its one-line error) and Django."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
    import django

    django.setup()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `hive: <message>` (cleaned of terminal controls) on stderr and exit (2: bad input)."""
    from hive_project.cli.output import clean

    click.echo(f"hive: {clean(message)}", err=True)
    sys.exit(code)


def require_redis() -> None:
    """Commands that send work to the broker call this first: an unreachable Redis is then one line
    (cannot reach Redis at …: start the hive with `hive up`, …) before anything is stored, not a
    task stored that no worker will hear of."""
    from coordination.dispatch import redis_client

    redis_client().ping()  # redis.ConnectionError: HiveGroup explains it


class HiveGroup(click.Group):
    """The `hive` group: whatever goes wrong, the user reads one line and gets a non-zero exit.

    Usage errors (a bad option value: `hive tasks -n -1`) are one line and exit 2; a database
    that is not set up, unreachable or locked, or an unreachable Redis, one line naming the cause
    and the fix (hive_project.cli.failures) and exit 1; any other error the same, with its
    traceback kept in var/logs/cli-errors.log.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "hive"
            click.echo(f"{where}: {exc.format_message()} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except Exception as exc:
            from hive_project.cli.failures import explain
            from hive_project.cli.output import clean

            explained = explain(exc)
            click.echo(f"hive: {clean(explained.line)}", err=True)
            sys.exit(explained.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=HiveGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Agent Hive: route tasks to pools of coding agents and run them on Celery workers."""


def _register() -> None:
    from hive_project.cli import (  # noqa: F401  (commands attach to `main`)
        accounts,
        alerts,
        bench,
        commands,
        demo,
        drain,
        flower,
        learning,
        ops,
        scaling,
        serve,
        sessions,
        up,
        webhooks,
    )


_register()

if __name__ == "__main__":
    main(prog_name="hive")
