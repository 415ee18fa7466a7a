"""The live dashboard at `/`: pools, agents, tasks and coordination sessions (each drawn as its DAG),
kept current by the event stream.

The page is static HTML plus one vanilla JS file (external_api/static/hive/dashboard.js): it
loads the current state from the API with the session and follows `/ws/events/`. Any user may
sign in at `/login/` (staff or not, e.g. made with `hive user create`): everyone sees every pool
and agent (they are shared), and the tasks and events of their own team — staff see all. The API
and the stream scope what they send (coordination.selectors), the page shows what it is given.
Failed sign-ins are throttled (external_api.auth_throttle).
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

LOGIN_URL = "/login/"


@require_GET
@login_required(login_url=LOGIN_URL)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "hive/dashboard.html", {"user": request.user})


# Django's own views: CSRF-protected form, `next` only to this site, session rotated on sign-in.
login = auth_views.LoginView.as_view(template_name="hive/login.html", next_page="/")
logout = auth_views.LogoutView.as_view(next_page=LOGIN_URL)
