"""The live dashboard at `/`: pools (with charts of their size and work over the last hour), alerts,
agents, tasks and coordination sessions (each drawn as its DAG), kept current by the event stream.

The page is static HTML plus one vanilla JS file (external_api/static/hive/dashboard.js): it
loads the current state from the API with the session and follows `/ws/events/`. Any user may
sign in at `/login/` (staff or not, e.g. made with `hive user create`): everyone sees every pool
and agent (they are shared), and the tasks and events of their own team — staff see all. The API
and the stream scope what they send (coordination.selectors), the page shows what it is given.
Failed sign-ins are throttled (external_api.auth_throttle).

The charts read `/dashboard/series/` (signed-in users, like the page): the pool samples the
monitoring beat records (coordination.monitoring) and the scaling decisions, drawn with uPlot
(external_api/static/hive/vendor/uplot, MIT, served from the project's static files).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from coordination.selectors import pool_series
from external_api.errors import json_error

LOGIN_URL = "/login/"
SERIES_MINUTES = (1, 24 * 60)  # samples are kept a day


@require_GET
@login_required(login_url=LOGIN_URL)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "hive/dashboard.html", {"user": request.user})


@require_GET
def series(request: HttpRequest) -> HttpResponse:
    """`GET /dashboard/series/?minutes=60`: every pool's samples and scaling decisions over the last
    `minutes` (1..1440), as columns for the charts. A 401 in JSON (not a redirect) when signed out."""
    if not request.user.is_authenticated:
        return json_error("not_authenticated", "sign in at /login/ to see the dashboard's data", 401)
    unknown = sorted(set(request.GET) - {"minutes"})
    if unknown:
        return json_error("bad_request", f"{unknown[0]}: unknown parameter; the parameters are minutes", 400)
    text = request.GET.get("minutes") or "60"
    low, high = SERIES_MINUTES
    if not text.isdigit() or not low <= int(text) <= high:
        return json_error("bad_request", f"minutes = {text[:20]!r}: expected a whole number {low}..{high}", 400)
    now = timezone.now()
    since = now - timedelta(minutes=int(text))
    monitoring = settings.HIVE_CONFIG.external_api.performance_monitoring
    body = {
        "now": now.timestamp(),
        "since": since.timestamp(),
        "interval": monitoring.monitoring_interval,
        "enabled": monitoring.enabled,
        "pools": pool_series(since=since),
    }
    return JsonResponse(body)


# Django's own views: CSRF-protected form, `next` only to this site, session rotated on sign-in.
login = auth_views.LoginView.as_view(template_name="hive/login.html", next_page="/")
logout = auth_views.LogoutView.as_view(next_page=LOGIN_URL)
