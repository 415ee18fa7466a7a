from django.apps import AppConfig


class ExternalApiConfig(AppConfig):
    name = "external_api"

    def ready(self) -> None:
        from external_api import schema  # noqa: F401  (registers the API key scheme with drf-spectacular)
