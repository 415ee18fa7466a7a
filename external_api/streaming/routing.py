"""WebSocket routes: `/ws/events/`, behind the origin check and the session (for the dashboard).

The consumer lives in consumers.py; API keys and tokens are checked there, the session cookie
by AuthMiddlewareStack here.
"""

from django.urls import path


def websocket_application():
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from external_api.streaming.consumers import EventStreamConsumer
    from external_api.streaming.origins import StreamOriginValidator

    return StreamOriginValidator(AuthMiddlewareStack(URLRouter([path("ws/events/", EventStreamConsumer.as_asgi())])))
