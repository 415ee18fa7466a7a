from django.apps import AppConfig


class ExternalApiConfig(AppConfig):
    name = "external_api"
