from django.apps import AppConfig
from django.conf import settings


class ExternalApiConfig(AppConfig):
    name = "external_api"

    def ready(self) -> None:
        from coordination.events import register_announcer
        from external_api.streaming.broadcast import announce

        register_announcer(announce)
        if settings.WORKER_PROCESS:  # no logins and no API schema in a Celery worker: DRF stays unloaded
            return
        from external_api import (  # noqa: F401
            auth_throttle,  # connects the failed-login counters to Django's auth signals
            schema,  # registers the API key scheme with drf-spectacular
        )
