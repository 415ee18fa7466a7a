"""The PostgreSQL backend (hive_project.postgresql) skips Django's per-request health check only for
a connection that served the previous request without error moments ago; any other is checked,
and a connection the server dropped is replaced before the request's first query."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError, ProgrammingError
from django.db import connection as default_connection

from hive_project.postgresql import base

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgresql]


@pytest.fixture
def conn(monkeypatch):
    """A connection of its own, persistent and health-checked as in a gunicorn thread or a worker."""
    settings = {**default_connection.settings_dict, "CONN_MAX_AGE": 600, "CONN_HEALTH_CHECKS": True}
    wrapper = base.DatabaseWrapper(settings, "health-check-test")
    wrapper.checks = 0
    usable = wrapper.is_usable

    def counted() -> bool:
        wrapper.checks += 1
        return usable()

    monkeypatch.setattr(wrapper, "is_usable", counted)
    yield wrapper
    wrapper.close()


def request(conn, sql: str = "SELECT 1") -> int:
    """One request as Django runs it: close_old_connections at its start and its end."""
    conn.close_if_unusable_or_obsolete()
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        conn.close_if_unusable_or_obsolete()


def backend_pid(conn) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.fixture
def window(monkeypatch):
    """Sets PROVEN_FOR: a long one, so that a loaded machine's pauses never end it mid-test."""
    return lambda seconds: monkeypatch.setattr(base, "PROVEN_FOR", seconds)


def dropped_by_the_server(conn) -> int:
    """After a request: the server ends the connection's session (as a restart would); its pid."""
    request(conn)
    pid = backend_pid(conn)
    conn.close_if_unusable_or_obsolete()
    with default_connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    return pid


def test_a_connection_that_just_served_a_request_skips_the_check(conn, window):
    window(30)
    request(conn)  # connects: a new connection needs no check
    assert conn.checks == 0

    for _ in range(3):
        assert request(conn) == 1
    assert conn.checks == 0


def test_a_connection_idle_for_longer_is_checked(conn, window):
    window(0.05)
    request(conn)
    time.sleep(0.1)

    request(conn)

    assert conn.checks == 1


def test_a_connection_whose_request_met_a_database_error_is_checked_before_it_counts_as_proven(conn, window):
    window(30)
    request(conn)
    with pytest.raises(ProgrammingError, match="no_such_table"):
        request(conn, "SELECT * FROM no_such_table")

    assert conn.checks == 1  # Django checks it at the end of the failed request, not before
    assert request(conn) == 1
    assert conn.checks == 1  # that check, moments ago, is the proof


def test_a_connection_whose_check_after_an_error_failed_is_replaced(conn, window):
    window(30)
    dropped = dropped_by_the_server(conn)

    with pytest.raises(OperationalError):
        request(conn)  # within the window no check: the dropped connection fails this request
    assert request(conn) == 1  # the failed check at its end closed it; this one connects anew

    assert backend_pid(conn) != dropped


def test_a_connection_the_server_dropped_is_replaced_before_the_next_request(conn, window):
    window(0.05)
    dropped = dropped_by_the_server(conn)
    time.sleep(0.1)

    assert request(conn) == 1

    assert conn.checks == 1
    assert backend_pid(conn) != dropped
