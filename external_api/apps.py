from django.apps import AppConfig


class ExternalApiConfig(AppConfig):
    name = "external_api"

    def ready(self) -> None:
        from coordination.events import register_announcer
        from external_api import (  # noqa: F401
            auth_throttle,  # connects the failed-login counters to Django's auth signals
            schema,  # registers the API key scheme with drf-spectacular
        )
        from external_api.streaming.broadcast import announce

        register_announcer(announce)
