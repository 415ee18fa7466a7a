"""The dashboard end to end: a real ASGI server (`hive serve`), a real backend worker, headless
Chromium (Debian's package) driven by Playwright. Sign in at `/login/`, open `/`, submit a task
through the API and watch it appear, run and succeed, with its output; start a coordination session
and watch its DAG's steps turn succeeded. A user who is not staff (made like `hive user create`
makes them) signs in too and sees every pool, but only the tasks and events of their own team."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from hive_project.launch import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get update && apt-get install -y chromium"),
]


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_until_serving(base: str, server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"hive serve exited with {server.returncode}:\n{server.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    pytest.fail(f"hive serve did not answer within {timeout}s:\n{server.log_path.read_text()[-3000:]}")


def console_error(message, problems: list[str]) -> None:
    where = message.location.get("url", "")
    if message.type == "error" and not where.endswith("/favicon.ico"):  # the admin's login page has none
        problems.append(f"console: {message.text} ({where})")


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/")
    assert "/login/" in page.url and "next=/" in page.url, "anonymous users are sent to sign in"
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/")


def serve(hive, settings) -> tuple[str, object]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the server's default
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = hive.spawn("web", [sys.executable, "-m", "hive_project.cli", "serve", "--port", str(port)])
    wait_until_serving(base, server)
    return base, server


def test_dashboard_shows_a_task_run_live(hive, settings):
    from playwright.sync_api import sync_playwright

    base, _ = serve(hive, settings)
    User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    hive.worker("backend")
    token = http("POST", f"{base}/api/v1/auth/token/", {"username": "sam", "password": PASSWORD})["access"]
    problems: list[str] = []

    # No ORM from here on: Playwright's sync API runs an event loop in this thread.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            page.on("console", lambda msg: console_error(msg, problems))
            page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

            sign_in(page, base, "sam")
            page.wait_for_selector("#connection.live", timeout=15_000)
            page.wait_for_selector('#pools tr[data-pool="backend"]', timeout=10_000)
            page.wait_for_selector('#agents tr[data-agent="backend@test"]', timeout=10_000)

            command = [sys.executable, "-c", "print('hello from the dashboard')"]
            task = http("POST", f"{base}/api/v1/tasks/", {"command": command, "capabilities": ["python"]}, token)
            card = f'#tasks [data-task-id="{task["id"]}"]'
            page.wait_for_selector(card, timeout=15_000)  # appears live, without a reload
            page.wait_for_selector(f'{card}[data-status="succeeded"]', timeout=60_000)
            assert page.inner_text(f"{card} .status") == "succeeded"
            page.wait_for_function(
                "sel => (document.querySelector(sel)?.textContent || '').includes('hello from the dashboard')",
                arg=f"{card} pre.output",
                timeout=10_000,
            )
            assert "backend" in page.inner_text(card)
            seen = page.inner_text("#events")
            assert "task.queued" in seen and "task.running" in seen and "task.succeeded" in seen

            # A coordination session: its DAG appears live and its steps turn succeeded.
            step = {"command": [sys.executable, "-c", "print('step done')"], "capabilities": ["python"]}
            plan = {
                "name": "dashboard dag",
                "steps": [
                    {"name": "a", **step},
                    {"name": "b", **step},
                    {"name": "c", "depends_on": ["a", "b"], **step},
                ],
            }
            session = http("POST", f"{base}/api/v1/sessions/", plan, token)
            drawn = f'#sessions [data-session-id="{session["id"]}"]'
            page.wait_for_selector(f"{drawn} svg", timeout=15_000)
            assert page.locator(f"{drawn} svg path.edge").count() == 2
            for name in ("a", "b", "c"):
                page.wait_for_selector(f'{drawn} g[data-step="{name}"][data-status="succeeded"]', timeout=60_000)
            page.wait_for_selector(f'{drawn}[data-status="succeeded"]', timeout=15_000)
            assert "dashboard dag" in page.inner_text(drawn)
        finally:
            browser.close()
    assert not problems, problems


def test_dashboard_shows_a_non_staff_user_their_teams_tasks_only(hive, settings):
    from external_api.services import apikey_create, team_create, user_create

    base, _ = serve(hive, settings)
    acme, globex = team_create(name="acme"), team_create(name="globex")
    user_create(username="olivia", team=acme, password=PASSWORD)  # what `hive user create` does
    _, acme_key = apikey_create(name="ci", scopes=["write", "commands"], team=acme)
    _, globex_key = apikey_create(name="ci", scopes=["write", "commands"], team=globex)
    before = submit(base, acme_key, "acme before")
    hidden = submit(base, globex_key, "globex secret")
    problems: list[str] = []

    with sync_playwright_context() as browser:
        page = browser.new_page()
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("console", lambda msg: console_error(msg, problems))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

        sign_in(page, base, "olivia")
        page.wait_for_selector("#connection.live", timeout=15_000)
        page.wait_for_selector('#pools tr[data-pool="backend"]', timeout=10_000)  # shared: every user sees pools
        page.wait_for_selector(f'#tasks [data-task-id="{before["id"]}"]', timeout=10_000)
        assert "olivia" in page.inner_text("header .who") and "admin" not in page.inner_text("header nav")

        # live: the other team's new task never shows, the own team's does
        other = submit(base, globex_key, "globex later")
        mine = submit(base, acme_key, "acme later")
        page.wait_for_selector(f'#tasks [data-task-id="{mine["id"]}"]', timeout=15_000)
        shown = page.inner_text("#tasks")
        events = page.inner_text("#events")
    assert "acme before" in shown and "acme later" in shown
    assert "globex" not in shown
    for task in (hidden, other):
        assert task["id"][:8] not in shown and task["id"][:8] not in events
    assert not problems, problems


def submit(base: str, key: str, label: str) -> dict:
    """A command task `echo <label>` submitted with a team's API key (the card shows its command)."""
    body = {"command": ["echo", label], "capabilities": ["python"]}
    request = urllib.request.Request(f"{base}/api/v1/tasks/", method="POST", data=json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    request.add_header("X-API-Key", key)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def sync_playwright_context():
    """Headless Chromium; no ORM inside (Playwright's sync API runs an event loop in this thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def in_thread(function, **kwargs) -> object:
    """Call an ORM function while Playwright's event loop owns this thread (Django refuses sync ORM
    calls under a running loop): in a thread of its own, with its own connection."""
    import threading

    from django.db import connection

    result: list[object] = []

    def run() -> None:
        try:
            result.append(function(**kwargs))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert result, f"{function.__name__} did not return"
    return result[0]


# Pixels of a canvas drawn in a colour (r, g, b): the chart's series, not only its axes.
COUNT_COLOUR = """([sel, r, g, b]) => {
  const canvas = document.querySelector(sel);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - r) < 12 && Math.abs(data[i + 1] - g) < 12 && Math.abs(data[i + 2] - b) < 12 && data[i + 3] > 200) n++;
  }
  return n;
}"""


def test_dashboard_charts_each_pool_over_the_hour_and_shows_an_alert_live(hive, settings, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    from coordination.models import PoolSample
    from coordination.scaling.services import scaling_set
    from tests.conftest import wait_for

    base, _ = serve(hive, settings)
    User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    hive.worker("backend", LEANVIBE_RESOURCES_MONITORING_CPU="false")  # a busy machine's 100% raises no alert
    # monitoring every half second; three tasks queued on a pool make an alert
    hive.control(
        LEANVIBE_PERFORMANCE_MONITORING_INTERVAL="0.5",
        LEANVIBE_PERFORMANCE_MONITORING_ALERT_THRESHOLDS_TASK_QUEUE_LENGTH="3",
    )
    wait_for(
        lambda: PoolSample.objects.filter(pool__name="backend", online=1).count() >= 3,
        timeout=60,
        what="the monitoring beat to sample the pools",
    )
    token = http("POST", f"{base}/api/v1/auth/token/", {"username": "sam", "password": PASSWORD})["access"]
    problems: list[str] = []

    with sync_playwright_context() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("console", lambda msg: console_error(msg, problems))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

        sign_in(page, base, "sam")
        page.wait_for_selector("#connection.live", timeout=15_000)
        chart = '#charts figure[data-pool="backend"]'
        page.wait_for_selector(f"{chart} canvas", timeout=15_000)
        for pool in ("frontend", "infrastructure", "ios"):
            assert page.locator(f'#charts figure[data-pool="{pool}"] canvas').count() == 1
        legend = page.inner_text(f"{chart} .u-legend")
        assert all(name in legend for name in ("desired", "online", "queued", "running")), legend
        assert int(page.get_attribute(chart, "data-points")) >= 3
        assert "1 online of" in page.inner_text(f"{chart} figcaption")
        # the "online" line is drawn (a few dozen pixels: its step up and a short run on the hour's
        # axis, fewer when the machine is slow and the samples are few); redrawn at every sample
        online = [f"{chart} canvas", 11, 92, 173]
        try:
            page.wait_for_function(f"args => ({COUNT_COLOUR})(args) > 20", arg=online, timeout=20_000)
        except PlaywrightTimeoutError:
            raise AssertionError(f"the online line has {page.evaluate(COUNT_COLOUR, online)} pixels") from None
        assert page.locator('#alerts li[data-status="active"]').count() == 0

        # Work queued on a pool without a worker: its chart shows it and an alert appears, live.
        for n in range(3):
            http("POST", f"{base}/api/v1/tasks/", {"command": ["echo", str(n)], "capabilities": ["swift"]}, token)
        alert = '#alerts li[data-subject="queue:ios"][data-status="active"]'
        page.wait_for_selector(alert, timeout=20_000)
        text = page.inner_text(alert)
        assert "warning" in text and "pool ios has 3 tasks queued (>= 3" in text
        assert "no worker of pool ios is online" in text  # the recommendation
        assert page.inner_text("#alert-count") == "1 active"
        page.wait_for_function(
            "sel => (document.querySelector(sel)?.textContent || '').includes('3 queued')",
            arg='#charts figure[data-pool="ios"] figcaption',
            timeout=20_000,
        )

        # A scaling decision is marked on the pool's chart as it is made.
        in_thread(scaling_set, pool="backend", desired=2, reason="dashboard test")
        page.wait_for_function(
            "sel => (document.querySelector(sel)?.title || '').includes('manual target 2: dashboard test')",
            arg=chart,
            timeout=15_000,
        )
        assert int(page.get_attribute(chart, "data-decisions")) >= 1
        assert "→2" in page.inner_text(f"{chart} figcaption")
        marks = page.evaluate(COUNT_COLOUR, [f"{chart} canvas", 180, 35, 24])  # the dashed red decision mark
        assert marks > 20, marks
        page.screenshot(path=str(tmp_path / "dashboard-charts.png"), full_page=True)
    assert not problems, problems


def train_duration_model(*, pool: str) -> str:
    """History of finished attempts on `pool` (a duration that grows with complexity), then a
    duration model trained on it; returns what became of the version."""
    from agents.models import Agent, AgentPool
    from ml.services import ml_train
    from tests.ml.synthetic import World, build_history

    row = AgentPool.objects.get(name=pool)
    Agent.objects.create(name=f"{pool}-0@history", pool=row, status=Agent.Status.OFFLINE)  # who ran the history
    build_history(World(speed={pool: 1.0}, types={"general": 20.0}), n=300, pools={pool: row}, seed=1)
    return ml_train(kinds=["duration"]).of("duration").status


def test_dashboard_shows_a_queued_tasks_eta_once_a_model_is_trained(hive, settings):
    base, _ = serve(hive, settings)
    User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    token = http("POST", f"{base}/api/v1/auth/token/", {"username": "sam", "password": PASSWORD})["access"]
    problems: list[str] = []

    with sync_playwright_context() as browser:
        page = browser.new_page()
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("console", lambda msg: console_error(msg, problems))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
        sign_in(page, base, "sam")
        page.wait_for_selector("#connection.live", timeout=15_000)

        # no worker runs: the task stays queued
        task = http("POST", f"{base}/api/v1/tasks/", {"command": ["true"], "capabilities": ["python"]}, token)
        card = f'#tasks [data-task-id="{task["id"]}"]'
        page.wait_for_selector(f'{card}[data-status="queued"]', timeout=15_000)
        page.wait_for_function(
            "sel => document.querySelector(sel)?.textContent === 'ETA: no model yet'",
            arg=f"{card} .eta",
            timeout=20_000,
        )

        assert in_thread(train_duration_model, pool=task["pool"]) == "activated"

        # the page fetches ETAs again while a task waits; the server picks the new version up by itself
        page.wait_for_function(
            "sel => /^ETA \\d/.test(document.querySelector(sel)?.textContent || '')", arg=f"{card} .eta", timeout=60_000
        )
        shown = page.inner_text(f"{card} .eta")
        title = page.get_attribute(f"{card} .eta", "title")
    listed = next(t for t in http("GET", f"{base}/api/v1/tasks/", token=token)["results"] if t["id"] == task["id"])
    assert listed["eta"]["model_version"] == "duration v1" and listed["eta"]["seconds"] > 0
    assert "(duration v1)" in title and shown.startswith("ETA ")
    assert not problems, problems
