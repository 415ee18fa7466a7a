"""WebSocket routes: `/ws/events/`, behind the session (for the dashboard).

The consumer lives in consumers.py; it checks the page's origin (origins.py) and the API key,
token or session (auth.py) itself, since which origins may connect depends on the credential.
"""

from __future__ import annotations

from typing import Any

from django.urls import path


def websocket_application() -> Any:
    from channels.auth import AuthMiddleware
    from channels.sessions import CookieMiddleware

    from external_api.streaming.consumers import EventStreamConsumer

    return CookieMiddleware(ReadSession(AuthMiddleware(_routes(EventStreamConsumer))))


def _routes(consumer: Any) -> Any:
    from channels.routing import URLRouter

    return URLRouter([path("ws/events/", consumer.as_asgi())])


class ReadSession:
    """channels' SessionMiddleware for a stream that only reads the session: the session in the
    scope, the server's own `send` passed on. channels' wrapper of `send` looks at every message
    (through the lazy session) to save a changed session on accept; the stream changes none, and
    it sends every event to every socket through that wrapper."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        from channels.sessions import InstanceSessionWrapper

        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)
