"""The web process keeps a webhook source it has read for settings.WEBHOOK_SOURCE_CACHE_SECONDS
(external_api.webhooks.intake.source_for): no SELECT of the source per delivery, a change made
elsewhere acts within the bound, a newly set secret and a change saved here act at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from coordination.models import Task
from external_api.models import WebhookSource
from external_api.webhooks import intake
from tests.webhooks.conftest import GITHUB_SECRET, comment_event, post_github

pytestmark = pytest.mark.django_db

BOUND = 5.0


@pytest.fixture
def clock(monkeypatch, settings) -> list[float]:
    """The cache on, with a clock the test moves: `clock[0] += seconds`."""
    settings.WEBHOOK_SOURCE_CACHE_SECONDS = BOUND
    now = [1000.0]
    monkeypatch.setattr(intake, "_clock", lambda: now[0])
    intake._forget_sources()
    yield now
    intake._forget_sources()


def deliver(client, n: int, *, secret: str = GITHUB_SECRET):
    body = comment_event(f"/hive task {n}", comment_id=n)
    return post_github(client, body, event="issue_comment", delivery=f"d-{n}", secret=secret)


def source_reads(queries) -> int:
    table = WebhookSource._meta.db_table
    return sum(1 for q in queries.captured_queries if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"])


def test_a_cached_source_is_not_read_again_within_the_bound(client, github, clock):
    assert deliver(client, 1).status_code == 201

    with CaptureQueriesContext(connection) as queries:
        response = deliver(client, 2)

    assert response.status_code == 201, response.content
    assert source_reads(queries) == 0
    assert Task.objects.get(external_ref__endswith="comment-2").team_id == github.team_id


def test_a_source_disabled_elsewhere_is_refused_once_the_bound_has_passed(client, github, clock):
    assert deliver(client, 1).status_code == 201
    WebhookSource.objects.filter(id=github.id).update(enabled=False)  # another process: no signal here

    clock[0] += BOUND + 0.1
    response = deliver(client, 2)

    assert response.status_code == 404
    assert Task.objects.count() == 1


def test_a_secret_revoked_elsewhere_is_refused_once_the_bound_has_passed(client, github, clock):
    assert deliver(client, 1).status_code == 201
    WebhookSource.objects.filter(id=github.id).update(secret="the new secret", previous_secret="")

    clock[0] += BOUND + 0.1
    response = deliver(client, 2)

    assert response.status_code == 401
    assert Task.objects.count() == 1


def test_a_delivery_signed_with_a_secret_set_elsewhere_is_accepted_at_once(client, github, clock):
    assert deliver(client, 1).status_code == 201
    WebhookSource.objects.filter(id=github.id).update(secret="the new secret", previous_secret="")

    response = deliver(client, 2, secret="the new secret")

    assert response.status_code == 201, response.content
    assert deliver(client, 3, secret="the new secret").status_code == 201


def test_a_source_saved_in_this_process_acts_at_once(client, github, clock):
    assert deliver(client, 1).status_code == 201
    github.enabled = False
    github.save()

    assert deliver(client, 2).status_code == 404
    assert Task.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the delivery's reference to its source is checked at commit
def test_a_source_deleted_elsewhere_within_the_bound_is_a_404_not_a_500(client, github, clock):
    assert deliver(client, 1, secret="not the secret").status_code == 401  # read, and kept
    with connection.cursor() as cursor:  # another process deletes it: no signal here
        cursor.execute(f'DELETE FROM "{WebhookSource._meta.db_table}" WHERE id = %s', [github.id])

    response = deliver(client, 2)

    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found" and "github" in response.json()["detail"]
    assert not Task.objects.exists()
    assert intake._sources == {}  # forgotten: the next delivery reads the database
