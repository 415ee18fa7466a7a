from django.apps import AppConfig


class ExternalApiConfig(AppConfig):
    name = "external_api"

    def ready(self) -> None:
        from coordination.events import register_announcer
        from external_api import schema  # noqa: F401  (registers the API key scheme with drf-spectacular)
        from external_api.streaming.broadcast import announce

        register_announcer(announce)
