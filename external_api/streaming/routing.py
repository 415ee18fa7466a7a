"""WebSocket routes. The consumer lives in external_api/streaming/consumers.py."""

from django.urls import path


def websocket_application():
    from channels.security.websocket import OriginValidator

    from external_api.streaming.consumers import EventStreamConsumer
    from external_api.streaming.origins import allowed_origins

    from channels.routing import URLRouter

    return OriginValidator(URLRouter([path("ws/events/", EventStreamConsumer.as_asgi())]), allowed_origins())
