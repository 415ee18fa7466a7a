"""Duplicate deliveries arriving at the same moment, on a live server with real threads: the
database's unique constraints decide, so exactly one task is made."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from coordination.models import Task, Team
from external_api.models import WebhookDelivery
from external_api.services import webhook_source_create
from external_api.webhooks.signatures import github_signature
from tests.webhooks.conftest import GITHUB_SECRET, issue_event

pytestmark = pytest.mark.django_db(transaction=True)

SENDERS = 4


def post(url: str, body: bytes, delivery: str, event: str = "issues") -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": github_signature(GITHUB_SECRET, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def all_at_once(calls) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def github_url(live_server, live_pools) -> str:
    webhook_source_create(kind="github", slug="github", team=Team.objects.create(name="acme"), secret=GITHUB_SECRET)
    return f"{live_server.url}/webhooks/github/"


def test_identical_deliveries_at_once_make_exactly_one_task(github_url):
    body = json.dumps(issue_event()).encode()
    results = all_at_once([lambda: post(github_url, body, "d-same")] * SENDERS)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * (SENDERS - 1) + [201], results
    assert Task.objects.count() == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "accepted" and delivery.task == Task.objects.get()
    assert {body["task"] for _, body in results} == {str(Task.objects.get().id)}


def test_different_deliveries_for_one_issue_at_once_make_exactly_one_task(github_url):
    calls = [
        lambda: post(github_url, json.dumps(issue_event(action="opened")).encode(), "d-opened"),
        lambda: post(github_url, json.dumps(issue_event(action="labeled", label="hive")).encode(), "d-labeled"),
    ]
    results = all_at_once(calls)
    assert sorted(status for status, _ in results) == [200, 201], results
    assert Task.objects.count() == 1
    assert sorted(WebhookDelivery.objects.values_list("outcome", flat=True)) == ["accepted", "duplicate"]
    assert set(WebhookDelivery.objects.values_list("task", flat=True)) == {Task.objects.get().id}
