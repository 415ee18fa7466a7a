"""The settings package as a Django app, for what must hook into Django at start-up."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _echo_queries(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Django logs statements only through its debug cursor, which it uses when DEBUG is on or
    # this flag is set; `database.echo` must work with DEBUG off (and always is, in production).
    connection.force_debug_cursor = True


class HiveProjectConfig(AppConfig):
    name = "hive_project"
    label = "hive_project"
    verbose_name = "Agent Hive settings"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.backends.signals import connection_created

        if getattr(settings, "DATABASE_ECHO", False):
            connection_created.connect(_echo_queries, dispatch_uid="hive-database-echo")
