"""WebSocket routes: `/ws/events/`, behind the session (for the dashboard).

The consumer lives in consumers.py; it checks the page's origin (origins.py) and the API key,
token or session (auth.py) itself, since which origins may connect depends on the credential.
"""

from __future__ import annotations

from typing import Any

from django.urls import path


def websocket_application() -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from external_api.streaming.consumers import EventStreamConsumer

    return AuthMiddlewareStack(URLRouter([path("ws/events/", EventStreamConsumer.as_asgi())]))
