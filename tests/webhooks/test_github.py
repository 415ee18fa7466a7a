"""GitHub deliveries through the real URL conf, middleware and database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from coordination.dispatch import task_ids_in_broker
from coordination.models import Task, Team
from external_api.models import WebhookDelivery, WebhookSource
from external_api.services import webhook_source_create, webhook_source_rotate
from external_api.webhooks.signatures import github_signature
from tests.conftest import purge_broker
from tests.webhooks.conftest import GITHUB_SECRET, comment_event, issue_event, post_github

pytestmark = pytest.mark.django_db

VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def nothing_stored() -> bool:
    return WebhookDelivery.objects.count() == 0 and Task.objects.count() == 0


def test_githubs_test_vector_is_accepted_on_a_full_request(client, acme):
    webhook_source_create(kind="github", slug="vector", team=acme, secret=VECTOR_SECRET)
    response = post_github(
        client,
        b"Hello, World!",
        event="ping",
        delivery="d-vector",
        signature=VECTOR_SIGNATURE,
        path="/webhooks/github/vector/",
    )
    assert response.status_code == 200, response.content
    assert response.json()["code"] == "pong"
    assert WebhookDelivery.objects.get().outcome == WebhookDelivery.Outcome.PING


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (b"Hello, World?", VECTOR_SIGNATURE),
        (b"Hello, World!", VECTOR_SIGNATURE[:-1] + "0"),
        (b"Hello, World!", ""),
        (b"Hello, World!", "sha256=" + "é" * 64),
    ],
    ids=["body-byte-changed", "signature-byte-changed", "no-signature", "non-ascii-signature"],
)
def test_a_bad_signature_is_401_json_and_stores_nothing(client, acme, body, signature):
    webhook_source_create(kind="github", slug="vector", team=acme, secret=VECTOR_SECRET)
    response = post_github(client, body, event="ping", signature=signature, path="/webhooks/github/vector/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature" and response.json()["detail"]
    assert nothing_stored()


def test_a_labelled_issue_signed_with_a_changed_byte_creates_nothing(client, github):
    body = issue_event()
    signature = github_signature(GITHUB_SECRET, b'{"x": 1}')
    assert post_github(client, body, signature=signature).status_code == 401
    assert nothing_stored()


def test_an_unknown_source_is_404_json(client, github):
    response = post_github(client, issue_event(), path="/webhooks/github/nobody/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    # a source of another kind is not a GitHub source
    response = post_github(client, issue_event(), path="/webhooks/slack/github/")
    assert response.status_code == 404
    assert nothing_stored()


def test_a_labelled_issue_becomes_a_task_with_the_rules_capabilities(client, github):
    WebhookSource.objects.filter(id=github.id).update(rules={"capabilities": ["python", "api"], "priority": "high"})
    response = post_github(client, issue_event(), delivery="d-issue")
    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert response.json() == {
        "code": "accepted",
        "detail": f"task {task.id} queued on pool backend",
        "delivery_id": "d-issue",
        "task": str(task.id),
        "pool": "backend",
        "status": "queued",
    }
    assert task.prompt == "Login fails on Safari\n\nSteps: open /login in Safari 17."
    assert task.capabilities == ["api", "python"] and task.priority == "high"
    assert task.external_ref == "https://github.com/acme/web/issues/7"
    assert task.source == "github" and task.team == github.team
    delivery = WebhookDelivery.objects.get()
    assert (delivery.delivery_id, delivery.event, delivery.outcome, delivery.task) == (
        "d-issue",
        "issues.opened",
        "accepted",
        task,
    )


def test_the_accepted_task_is_stored_and_sent_to_its_pools_queue(client, github, django_capture_on_commit_callbacks):
    purge_broker()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_github(client, issue_event())
    assert response.status_code == 201
    task = Task.objects.get()
    assert task.status == Task.Status.QUEUED and task.attempts == 0  # stored and enqueued, nothing run
    assert str(task.id) in task_ids_in_broker(["hive.backend"])


def test_a_new_issue_sends_opened_and_labeled_and_makes_one_task(client, github):
    assert post_github(client, issue_event(action="opened"), delivery="d-1").status_code == 201
    again = post_github(client, issue_event(action="labeled", label="hive", body="edited meanwhile"), delivery="d-2")
    assert again.status_code == 200 and again.json()["code"] == "duplicate"
    assert Task.objects.count() == 1
    assert sorted(WebhookDelivery.objects.values_list("outcome", flat=True)) == ["accepted", "duplicate"]
    assert WebhookDelivery.objects.get(delivery_id="d-2").task == Task.objects.get()


def test_a_replayed_delivery_creates_no_second_task(client, github):
    first = post_github(client, issue_event(), delivery="d-replay")
    replay = post_github(client, issue_event(), delivery="d-replay")
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["code"] == "duplicate" and replay.json()["task"] == first.json()["task"]
    assert Task.objects.count() == 1 and WebhookDelivery.objects.count() == 1


@pytest.mark.parametrize(
    ("event", "body", "why"),
    [
        ("push", {"ref": "refs/heads/main"}, "push events do not become tasks"),
        ("issues", issue_event(labels=["bug"]), "no task label"),
        ("issues", issue_event(action="labeled", labels=["hive", "bug"], label="bug"), "not a task label"),
        ("issues", issue_event(action="closed"), "issues.closed does not become a task"),
        ("issues", issue_event(association="NONE"), "issue opened by NONE"),
        ("issue_comment", comment_event("please /hive fix it"), "does not start with /hive"),
        ("issue_comment", comment_event("/hivemind fix it"), "does not start with /hive"),
        ("issue_comment", comment_event("/hive fix it", action="edited"), "issue_comment.edited"),
        ("issue_comment", comment_event("/hive fix it", association="NONE"), "comment by NONE"),
        ("issue_comment", comment_event("/hive   "), "nothing to do after /hive"),
    ],
    ids=[
        "push",
        "unlabelled",
        "other-label",
        "closed",
        "outsider-issue",
        "prefix-not-first",
        "other-word",
        "edited",
        "outsider-comment",
        "empty-command",
    ],
)
def test_other_events_are_204_and_recorded_as_ignored(client, github, event, body, why):
    response = post_github(client, body, event=event)
    assert response.status_code == 204 and response.content == b""
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == WebhookDelivery.Outcome.IGNORED and why in delivery.detail
    assert Task.objects.count() == 0


def test_a_hive_comment_becomes_a_task_with_what_follows_the_prefix(client, github):
    response = post_github(client, comment_event("/hive fix the login bug"), event="issue_comment")
    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert task.prompt == "fix the login bug"
    assert task.external_ref == "https://github.com/acme/web/issues/7#issuecomment-55"
    assert task.payload["github"]["issue_url"] == "https://github.com/acme/web/issues/7"


def test_ping_is_pong_and_recorded(client, github):
    response = post_github(client, {"zen": "Design for failure.", "hook_id": 1}, event="ping", delivery="d-ping")
    assert response.status_code == 200
    assert response.json() == {"code": "pong", "detail": "Design for failure."}
    assert WebhookDelivery.objects.get().outcome == "ping"


def test_a_form_encoded_delivery_is_understood(client, github):
    import json
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(comment_event("/hive add a test"))}).encode()
    response = post_github(client, body, event="issue_comment", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201 and Task.objects.get().prompt == "add a test"


def test_a_task_no_pool_can_run_is_422_and_rejected_then_accepted_when_redelivered_after_the_fix(client, github):
    WebhookSource.objects.filter(id=github.id).update(rules={"capabilities": ["cobol"]})
    response = post_github(client, issue_event(), delivery="d-cobol")
    assert response.status_code == 422
    assert response.json()["code"] == "no_eligible_pool" and "cobol" in response.json()["detail"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "rejected" and "no_eligible_pool" in delivery.detail and delivery.task is None
    assert Task.objects.count() == 0

    WebhookSource.objects.filter(id=github.id).update(rules={"capabilities": ["python"]})
    redelivered = post_github(client, issue_event(), delivery="d-cobol")
    assert redelivered.status_code == 201
    assert WebhookDelivery.objects.get().outcome == "accepted" and Task.objects.count() == 1


def test_a_valid_delivery_that_is_not_json_is_400_and_rejected(client, github):
    response = post_github(client, b"<xml/>", event="issues", delivery="d-xml")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert WebhookDelivery.objects.get().outcome == "rejected" and Task.objects.count() == 0


def test_a_delivery_without_an_id_is_400_and_stores_nothing(client, github):
    body = b'{"zen": "x"}'
    response = client.post(
        "/webhooks/github/",
        data=body,
        content_type="application/json",
        headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": github_signature(GITHUB_SECRET, body)},
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
    assert nothing_stored()


def test_rotation_accepts_the_old_secret_until_it_expires(client, github):
    webhook_source_rotate(slug="github", secret="the new secret", overlap=timedelta(hours=1))
    assert post_github(client, {"zen": "old"}, event="ping", secret=GITHUB_SECRET).status_code == 200
    assert post_github(client, {"zen": "new"}, event="ping", secret="the new secret").status_code == 200

    WebhookSource.objects.filter(id=github.id).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    assert post_github(client, {"zen": "old"}, event="ping", secret=GITHUB_SECRET).status_code == 401
    assert post_github(client, {"zen": "new"}, event="ping", secret="the new secret").status_code == 200
    assert WebhookDelivery.objects.count() == 3


def test_rotation_without_overlap_refuses_the_old_secret_at_once(client, github):
    webhook_source_rotate(slug="github", secret="the new secret", overlap=timedelta(0))
    assert post_github(client, {"zen": "old"}, event="ping", secret=GITHUB_SECRET).status_code == 401


def test_source_rules_override_the_configured_defaults(client, github):
    WebhookSource.objects.filter(id=github.id).update(rules={"task_labels": ["agent"], "command_prefix": "/bot"})
    assert post_github(client, issue_event(labels=["hive"])).status_code == 204
    assert post_github(client, issue_event(labels=["Agent"], number=8)).status_code == 201
    assert post_github(client, comment_event("/bot write docs"), event="issue_comment").status_code == 201
    assert sorted(Task.objects.values_list("prompt", flat=True))[1] == "write docs"


def test_invalid_source_rules_are_a_500_json_naming_the_key_and_the_delivery_is_kept(client, github):
    WebhookSource.objects.filter(id=github.id).update(rules={"capabilities": "python"})
    response = post_github(client, issue_event())
    assert response.status_code == 500
    assert response.json()["code"] == "invalid_rules" and "capabilities" in response.json()["detail"]
    assert WebhookDelivery.objects.get().outcome == "rejected"


def test_the_configured_secret_makes_the_github_source_of_the_default_team(client, pools, settings, monkeypatch):
    github_config = settings.HIVE_CONFIG.external_api.webhook_server.github
    monkeypatch.setattr(github_config, "secret", "from the config")
    monkeypatch.setattr(github_config, "secrets_previous", ["older"])
    assert post_github(client, issue_event(), secret="from the config").status_code == 201
    assert post_github(client, issue_event(number=9), secret="older").status_code == 201
    assert post_github(client, issue_event(number=10), secret="unknown").status_code == 401
    assert set(Task.objects.values_list("team__name", flat=True)) == {"default"}
    source = WebhookSource.objects.get()
    assert (source.slug, source.kind, source.team.name) == ("github", "github", "default")


def test_without_a_configured_secret_or_source_github_is_404_with_a_hint(client, pools):
    response = post_github(client, issue_event())
    assert response.status_code == 404 and "hive webhook add github" in response.json()["detail"]


def test_the_rate_limit_is_429_with_retry_after_and_stores_nothing(client, github):
    WebhookSource.objects.filter(id=github.id).update(rules={"rate_limit_per_minute": 2})
    for number in (1, 2):
        assert post_github(client, issue_event(number=number)).status_code == 201
    response = post_github(client, issue_event(number=3))
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Task.objects.count() == 2 and WebhookDelivery.objects.count() == 2


def test_the_configured_endpoint_rate_limit_applies(client, github, settings, monkeypatch):
    endpoints = settings.HIVE_CONFIG.external_api.webhook_server.endpoints
    github_endpoint = next(e for e in endpoints if e.path == "/github/webhook")
    monkeypatch.setattr(github_endpoint, "rate_limit", 1)
    assert post_github(client, {"zen": "a"}, event="ping").status_code == 200
    assert post_github(client, {"zen": "b"}, event="ping").status_code == 429


def test_an_oversized_body_is_413_json(client, github, settings):
    settings.WEBHOOK_MAX_BYTES = 64
    response = post_github(client, issue_event(body="x" * 200))
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert nothing_stored()


def test_methods_content_types_and_the_switch_are_json_refusals(client, github, settings, monkeypatch):
    response = client.get("/webhooks/github/")
    assert response.status_code == 405 and response["Allow"] == "POST" and response.json()["code"]
    response = post_github(client, b"<x/>", content_type="application/xml")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"
    monkeypatch.setattr(settings.HIVE_CONFIG.external_api.webhook_server, "enabled", False)
    assert post_github(client, issue_event()).status_code == 404
    assert nothing_stored()


def test_the_url_works_without_the_trailing_slash(client, github):
    assert post_github(client, {"zen": "z"}, event="ping", path="/webhooks/github").status_code == 200


def test_a_source_of_another_team_files_tasks_in_that_team(client, github):
    globex = Team.objects.create(name="globex")
    webhook_source_create(kind="github", slug="globex-web", team=globex, secret="globex secret")
    response = post_github(client, issue_event(), secret="globex secret", path="/webhooks/github/globex-web/")
    assert response.status_code == 201 and Task.objects.get().team == globex


def test_a_disabled_source_is_404(client, github):
    WebhookSource.objects.filter(id=github.id).update(enabled=False)
    assert post_github(client, issue_event()).status_code == 404
    assert nothing_stored()
