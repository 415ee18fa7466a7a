"""`GET /api/v1/alerts/` with every persona (alerts are fleet-wide: every reader sees them all; no
credential is 401, no read scope 403), its filters and their refusals; the dashboard's series
endpoint (signed in with the session, 401 in JSON otherwise) with pool samples and scaling marks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from coordination.models import Alert, PoolSample, ScalingDecision
from tests.api.conftest import api_key, key_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/alerts/"


def alert(subject: str, *, level: str = "warning", resolved: bool = False, pool=None, ago: float = 0) -> Alert:
    at = timezone.now() - timedelta(seconds=ago)
    resource, _, host = subject.partition("@")
    return Alert.objects.create(
        subject=subject,
        resource="queue" if pool else resource,
        host="" if pool else host,
        pool=pool,
        level=level,
        value=80.0,
        peak=80.0,
        threshold=75.0,
        source="resources.thresholds.warning",
        message=f"{subject} is over",
        raised_at=at,
        updated_at=at,
        resolved_at=at if resolved else None,
    )


@pytest.fixture
def alerts(pools):
    return {
        "memory": alert("memory@h1", ago=30),
        "cpu": alert("cpu@h2", level="critical", ago=20),
        "queue": alert("queue:ios", pool=pools["ios"], ago=10),
        "old": alert("disk@h1", resolved=True, ago=3600),
    }


def subjects(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [a["subject"] for a in response.json()]


@pytest.mark.parametrize("who", ["owner", "outsider", "staff", "reader", "admin_key"])
def test_alerts_every_reader_sees_every_alert_newest_first(personas, alerts, who):
    response = personas[who].client.get(URL)

    assert subjects(response) == ["queue:ios", "cpu@h2", "memory@h1", "disk@h1"]
    first = response.json()[0]
    assert set(first) == {
        "id",
        "status",
        "subject",
        "resource",
        "level",
        "value",
        "peak",
        "threshold",
        "source",
        "message",
        "recommendation",
        "host",
        "pool",
        "agents",
        "raised_at",
        "updated_at",
        "resolved_at",
        "resolution",
    }
    assert (first["pool"], first["status"], first["resource"]) == ("ios", "active", "queue")


def test_alerts_without_credentials_is_401(personas, alerts):
    response = personas["anonymous"].client.get(URL)

    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_alerts_with_a_key_without_the_read_scope_is_403(teams, alerts):
    client = key_client(api_key(teams[0], ["write"]))

    assert client.get(URL).status_code == 403


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=active", ["queue:ios", "cpu@h2", "memory@h1"]),
        ("status=resolved", ["disk@h1"]),
        ("level=critical", ["cpu@h2"]),
        ("resource=queue", ["queue:ios"]),
        ("pool=ios", ["queue:ios"]),
        ("host=h1", ["memory@h1", "disk@h1"]),
        ("limit=2", ["queue:ios", "cpu@h2"]),
        ("status=active&host=h1", ["memory@h1"]),
    ],
)
def test_alerts_filters(personas, alerts, query, expected):
    assert subjects(personas["reader"].client.get(f"{URL}?{query}")) == expected


def test_alerts_since_keeps_recent_raises(personas, alerts):
    since = (timezone.now() - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")

    assert subjects(personas["reader"].client.get(URL, {"since": since})) == ["queue:ios", "cpu@h2", "memory@h1"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=open", "status"),
        ("level=info", "level"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("since=yesterday", "since"),
        ("colour=red", "colour"),
        ("level=warning&level=critical", "level"),
    ],
)
def test_alerts_bad_filter_is_400_naming_it(personas, alerts, query, field):
    response = personas["reader"].client.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert field in response.content.decode()


# --- the dashboard's series ----------------------------------------------------------------------------------
SERIES = "/dashboard/series/"


@pytest.fixture
def signed_in(pools) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("olivia", password="correct horse battery"))
    return client


def test_series_signed_in_gives_each_pools_samples_and_decisions_in_the_window(signed_in, pools):
    now = timezone.now()
    backend = pools["backend"]
    for minutes, online in ((90, 9), (50, 1), (20, 2)):  # the first is outside the hour
        PoolSample.objects.create(
            pool=backend, at=now - timedelta(minutes=minutes), desired=2, online=online, queued=5, running=online
        )
    ScalingDecision.objects.create(
        pool=backend,
        previous=1,
        desired=2,
        reason="backlog of 4: 1 -> 2",
        actuator="local",
        created_at=now - timedelta(minutes=30),
    )
    ScalingDecision.objects.create(
        pool=backend, previous=2, desired=3, reason="long ago", actuator="local", created_at=now - timedelta(hours=3)
    )

    response = signed_in.get(SERIES)

    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is True and body["interval"] == 30.0
    assert [p["pool"] for p in body["pools"]] == ["backend", "frontend", "infrastructure", "ios"]
    series = body["pools"][0]
    assert series["samples"]["online"] == [1, 2] and series["samples"]["desired"] == [2, 2]
    assert series["samples"]["queued"] == [5, 5] and series["samples"]["running"] == [1, 2]
    assert series["samples"]["t"][0] < series["samples"]["t"][1] <= body["now"]
    assert [(d["previous"], d["desired"], d["reason"]) for d in series["decisions"]] == [(1, 2, "backlog of 4: 1 -> 2")]
    assert body["pools"][1]["samples"]["t"] == []
    assert len(signed_in.get(SERIES, {"minutes": "240"}).json()["pools"][0]["decisions"]) == 2


def test_series_signed_out_is_401_json_not_a_redirect(pools):
    response = Client().get(SERIES)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("query", ["minutes=0", "minutes=1441", "minutes=abc", "minutes=-5", "pool=x"])
def test_series_bad_parameter_is_400_naming_it(signed_in, query):
    response = signed_in.get(f"{SERIES}?{query}")

    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["detail"]


def test_admin_lists_alerts_and_filters_the_active_ones(admin_client, alerts):
    every = admin_client.get("/admin/coordination/alert/").content.decode()
    active = admin_client.get("/admin/coordination/alert/?resolved_at__isempty=1").content.decode()

    assert "disk@h1" in every and "memory@h1" in every
    assert "memory@h1" in active and "queue:ios" in active and "disk@h1" not in active
    assert admin_client.get("/admin/coordination/alert/add/").status_code == 403
