"""The live dashboard at `/`: pools, agents, tasks and coordination sessions (each drawn as its DAG),
kept current by the event stream.

The page is static HTML plus one vanilla JS file (external_api/static/hive/dashboard.js): it
loads the current state from the API with the session and follows `/ws/events/`. Sign-in is the
Django admin's login page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
@login_required(login_url="/admin/login/")
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "hive/dashboard.html", {"user": request.user})
