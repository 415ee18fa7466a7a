"""The dashboard's Spend panel and a held task's reason, end to end: a real ASGI server, a real
worker running tests/fake_claude.py (which reports total_cost_usd 0.0123), headless Chromium.

A team member sees their own team's spend (per pool and for their team), staff every team's; a
prompt task held by the team's spent budget shows why on its card, live."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

import pytest

from coordination import budgets
from coordination.models import Task
from coordination.services import task_submit
from tests.conftest import wait_for
from tests.streaming.test_dashboard_browser import CHROMIUM, console_error, serve, sign_in, sync_playwright_context

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get update && apt-get install -y chromium"),
]
PASSWORD = "correct horse battery"


def succeeded(task: Task) -> None:
    wait_for(
        lambda: Task.objects.filter(id=task.id, status="succeeded").exists(),
        timeout=60,
        what=f"task {task.short_id} to succeed",
    )


def submit_prompt(base: str, key: str, prompt: str) -> dict:
    body = json.dumps({"prompt": prompt, "capabilities": ["kubernetes"]}).encode()
    request = urllib.request.Request(f"{base}/api/v1/tasks/", method="POST", data=body)
    request.add_header("Content-Type", "application/json")
    request.add_header("X-API-Key", key)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def watch(page, problems: list[str]) -> None:
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("console", lambda msg: console_error(msg, problems))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))


def spend_cell(page, table: str, group: str, column: str) -> str:
    selector = f'{table} tr[data-group="{group}"] td.{column}'
    page.wait_for_selector(selector, timeout=15_000)
    return page.inner_text(selector)


def test_dashboard_shows_spend_per_pool_and_team_and_why_a_task_is_held(hive, settings):
    from external_api.services import apikey_create, team_create, user_create

    base, _ = serve(hive, settings)
    acme, globex = team_create(name="acme"), team_create(name="globex")
    user_create(username="olivia", team=acme, password=PASSWORD)
    user_create(username="sam", team=globex, staff=True, password=PASSWORD)
    _, acme_key = apikey_create(name="ci", scopes=["write"], team=acme)
    budgets.team_budget_set(team=acme, budget=Decimal("0.01"))
    hive.worker("infrastructure")
    succeeded(task_submit(prompt="acme work", capabilities=["kubernetes"], team=acme))
    succeeded(task_submit(prompt="globex work", capabilities=["kubernetes"], team=globex))
    problems: list[str] = []

    # No ORM from here on: Playwright's sync API runs an event loop in this thread.
    with sync_playwright_context() as browser:
        page = browser.new_page()
        watch(page, problems)
        sign_in(page, base, "olivia")
        page.wait_for_selector("#connection.live", timeout=15_000)
        member_view = {
            "pool today": spend_cell(page, "#spend-pools", "infrastructure", "today"),
            "pool week": spend_cell(page, "#spend-pools", "infrastructure", "week"),
            "team today": spend_cell(page, "#spend-teams", "acme", "today"),
            "teams": page.inner_text("#spend-teams"),
        }
        # acme's budget is spent: its next prompt task waits, and its card says why, live
        task = submit_prompt(base, acme_key, "more acme work")
        card = f'#tasks [data-task-id="{task["id"]}"]'
        page.wait_for_selector(f"{card} p.held", timeout=30_000)
        held_text = page.inner_text(f"{card} p.held")
        card_status = page.get_attribute(card, "data-status")

        staff_page = browser.new_page()
        watch(staff_page, problems)
        sign_in(staff_page, base, "sam")
        staff_view = {
            "pool today": spend_cell(staff_page, "#spend-pools", "infrastructure", "today"),
            "acme": spend_cell(staff_page, "#spend-teams", "acme", "week"),
            "globex": spend_cell(staff_page, "#spend-teams", "globex", "today"),
        }

    assert member_view["pool today"] == member_view["pool week"] == "$0.0123"  # acme's share of the pool
    assert member_view["team today"] == "$0.0123"
    assert "globex" not in member_view["teams"]
    assert card_status == "queued"
    assert "budget: team acme has spent $0.0123 of its $0.01 a day" in held_text
    assert staff_view == {"pool today": "$0.0246", "acme": "$0.0123", "globex": "$0.0123"}
    assert not problems, problems
