"""The per-process snapshot of enabled pools and the default team (coordination.snapshot).

These tests commit (transactional_db): the cache is only used outside transactions. Each one
first submits once so the process holds a snapshot, then changes pools or teams the way another
process or an operator would, and checks the very next submit sees the change.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from agents.models import AgentPool
from coordination.errors import NoEligiblePool
from coordination.models import DEFAULT_TEAM, RoutingToken, Task, Team
from coordination.routing import eligible_pools
from coordination.services import task_submit, team_default
from coordination.snapshot import routing_snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def submit(**overrides):
    spec = {"capabilities": ["swift"], "prompt": "build the app"} | overrides
    return task_submit(**spec)


def test_snapshot_unchanged_token_reads_neither_pools_nor_team_again(live_pools):
    submit()  # makes the default team: a change, read again by the next call
    routing_snapshot()

    with CaptureQueriesContext(connection) as queries:
        pools = eligible_pools(["swift"])
        team = team_default()

    assert [p.name for p in pools] == ["ios"]
    assert team.name == DEFAULT_TEAM
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 2 and all("routingtoken" in sql for sql in statements), statements


def test_snapshot_pool_disabled_by_queryset_update_is_not_routed_to(live_pools):
    submit()

    AgentPool.objects.filter(name="ios").update(enabled=False)  # no signal, no save()

    with pytest.raises(NoEligiblePool, match="no pool offers swift"):
        submit()
    assert Task.objects.count() == 1


def test_snapshot_pool_disabled_by_raw_sql_is_not_routed_to(live_pools):
    submit()

    with connection.cursor() as cursor:  # what another program writing to the database would do
        cursor.execute(f"UPDATE {AgentPool._meta.db_table} SET enabled = %s WHERE name = %s", [False, "ios"])

    with pytest.raises(NoEligiblePool):
        submit()


def test_snapshot_pool_created_after_the_snapshot_takes_tasks_at_once(live_pools):
    with pytest.raises(NoEligiblePool):
        submit(capabilities=["rust"])

    AgentPool.objects.create(name="systems", capabilities=["rust"], runner={"kind": "command", "argv": ["true"]})

    assert submit(capabilities=["rust"]).pool.name == "systems"


def test_snapshot_pool_deleted_after_the_snapshot_is_not_routed_to(live_pools):
    assert {p.name for p in eligible_pools(["ui"])} == {"frontend", "ios"}
    AgentPool.objects.filter(name="frontend").delete()

    assert {p.name for p in eligible_pools(["ui"])} == {"ios"}


def test_snapshot_default_team_deleted_and_made_again_is_the_new_row(live_pools):
    first = submit().team
    Task.objects.all().delete()
    Team.objects.filter(id=first.id).delete()

    task = submit()

    assert task.team.name == DEFAULT_TEAM and task.team.id != first.id
    assert Team.objects.get(name=DEFAULT_TEAM).id == task.team.id


def test_snapshot_inside_a_transaction_sees_its_own_uncommitted_change(live_pools):
    submit()

    with transaction.atomic():
        AgentPool.objects.filter(name="ios").update(enabled=False)
        with pytest.raises(NoEligiblePool):
            submit()
        transaction.set_rollback(True)

    assert submit().pool.name == "ios"  # rolled back: ios is enabled again


def test_snapshot_copies_do_not_change_what_the_next_submit_sees(live_pools):
    pool = eligible_pools(["swift"])[0]
    pool.enabled = False  # changed in memory only, never saved

    assert eligible_pools(["swift"])[0].enabled is True


def test_snapshot_every_pool_or_team_write_replaces_the_token(live_pools):
    def token() -> int:
        return RoutingToken.objects.get(name="routing").token

    seen = {token()}
    AgentPool.objects.filter(name="ios").update(concurrency=3)
    seen.add(token())
    AgentPool.objects.create(name="extra", capabilities=["x"])
    seen.add(token())
    AgentPool.objects.filter(name="extra").delete()
    seen.add(token())
    Team.objects.create(name="other")
    seen.add(token())

    assert len(seen) == 5
    assert routing_snapshot().token == token()
