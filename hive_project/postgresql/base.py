"""Django's PostgreSQL backend; a connection that has just served a request or task skips the
health check, and the hive's per-task statements are prepared once per connection.

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

`preparing_cursor()` (coordination.rows.hot_cursor: the submit's INSERT, the claim, the finish)
binds parameters on the server and prepares each statement on first use, once per connection:
PostgreSQL then skips parsing and, once its generic plan is chosen, planning, which was half of
those statements' cost on the server. Django's own statements are bound on the client and never
prepared, as before (Django's default: `prepare_threshold` None). A transaction-mode pooler in
front of PostgreSQL must support protocol-level prepared statements (PgBouncer 1.21 and later,
`max_prepared_statements`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import psycopg
from django.db.backends.postgresql import base, operations
from psycopg.pq import TransactionStatus

PROVEN_FOR = 0.25  # seconds
PLAN_CHANGED = "cached plan must not change result type"
IDLE = TransactionStatus.IDLE


# django-stubs types neither psycopg's cursors nor the wrapper's _prepare_cursor
_ServerBindingCursor: Any = base.ServerBindingCursor


class PreparingCursor(_ServerBindingCursor):
    """psycopg's server-binding cursor that prepares every statement it executes.

    A migration run by another process while this connection lives (a rolling deploy) can change
    the type of a column a prepared statement returns; PostgreSQL then refuses that statement
    ("cached plan must not change result type") until it is prepared again, and psycopg forgets
    its statements only after DDL or a ROLLBACK on its own connection. Outside a transaction this
    cursor drops them (DEALLOCATE ALL) and runs the statement once more, prepared anew; inside one,
    the transaction is lost anyway and its ROLLBACK drops them."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        try:
            return super().execute(query, params, prepare=True, binary=binary)
        except psycopg.errors.FeatureNotSupported as exc:
            if PLAN_CHANGED not in str(exc) or self.connection.info.transaction_status != IDLE:
                raise
        self.connection.execute("DEALLOCATE ALL")
        return super().execute(query, params, prepare=True, binary=binary)


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str:
        # Django reads the client-bound query psycopg sent; a prepared one has none. The query log
        # (connection.queries, CaptureQueriesContext) shows it as client binding would have sent it.
        if isinstance(cursor, PreparingCursor):
            return self.compose_sql(sql, params)
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
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

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if params.get("prepare_threshold") is None:
            # psycopg ignores prepare=True while this is None. Only PreparingCursor binds on the
            # server; Django's client-binding cursors never prepare, whatever the threshold.
            params["prepare_threshold"] = sys.maxsize
        return params

    def preparing_cursor(self) -> Any:
        """A cursor like `cursor()` (Django's wrapper: execute wrappers, query log, errors) over a
        PreparingCursor."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            return self._prepare_cursor(PreparingCursor(self.connection))  # type: ignore[attr-defined]

    def connect(self) -> None:
        self.proven_at = float("-inf")
        super().connect()
