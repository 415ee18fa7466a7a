"""Django's PostgreSQL backend; a connection that has just served a request or task skips the
health check.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every request (and
every Celery task: Celery's Django fixup marks each one as a request does): one more round trip
each time, a tenth of the CPU a gateway POST or a GitHub delivery costs. The check is there for a
persistent connection that sat idle while the server restarted or dropped it. A connection that
answered a whole request or task without a connection error at most `PROVEN_FOR` seconds ago
skips it: no PostgreSQL restart fits in that time. Any other connection, one idle for longer or
one whose last use met an error, is checked as before. What the window gives up: a connection
the server drops within it (pg_terminate_backend, a proxy's failover) fails the one request that
next uses it, as it would without health checks, and Django then checks and replaces it
(tests/unit/test_postgresql_health_check.py).
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

PROVEN_FOR = 0.25  # seconds


class DatabaseWrapper(base.DatabaseWrapper):
    health_check_enabled: bool  # Django's own (BaseDatabaseWrapper), not in django-stubs
    health_check_done: bool
    proven_at = float("-inf")  # monotonic time the connection last served a request without error

    def close_if_unusable_or_obsolete(self) -> None:
        # Called at the start and at the end of each request (close_old_connections) and task.
        # `health_check_done` is set by the first query after a start and reset by this call, so
        # here it says that the request now ending used the connection.
        if self.connection is not None and self.health_check_done and not self.errors_occurred:
            self.proven_at = time.monotonic()
        super().close_if_unusable_or_obsolete()

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.errors_occurred
            and time.monotonic() - self.proven_at <= PROVEN_FOR
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def connect(self) -> None:
        self.proven_at = float("-inf")
        super().connect()
