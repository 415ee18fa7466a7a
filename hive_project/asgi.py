"""ASGI entry point: HTTP through Django (static files included), WebSockets through Channels.

HTTP request bodies pass the size cap as they arrive (external_api.body_limit); request lines
written by the server have their secret query parameters redacted (hive_project.logredact).
"""

import os

from django.core.asgi import get_asgi_application

from hive_project.launch import mark_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
mark_web_process()  # before the settings load: this process draws database connections from a pool

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (after Django is set up)
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from external_api.body_limit import BodyLimitMiddleware  # noqa: E402
from hive_project import logredact  # noqa: E402

logredact.install()  # the server configured its loggers before it imported this module

# django-stubs types the handler's scope as a dict and its messages as read-only; it takes any ASGI call
routes = {"http": BodyLimitMiddleware(ASGIStaticFilesHandler(django_http))}  # type: ignore[arg-type]
if settings.SERVE_ROLE in ("all", "streaming"):
    from external_api.streaming.routing import websocket_application

    routes["websocket"] = websocket_application()

application = ProtocolTypeRouter(routes)
