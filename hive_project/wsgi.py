"""WSGI entry point: what `hive serve --role gateway|webhooks` runs under gunicorn
(hive_project.wsgi_server), or `gunicorn hive_project.wsgi:application`.

Request bodies pass the size cap as they arrive (external_api.body_limit.WsgiBodyLimit); request
lines written by the server have their secret query parameters redacted (hive_project.logredact).
Database connections are Django's persistent ones (`database.conn_max_age`): a gunicorn thread
lives as long as its worker, so its connection is reused from one request to the next.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")

django_wsgi = get_wsgi_application()

from external_api.body_limit import WsgiBodyLimit  # noqa: E402  (after Django is set up)
from hive_project import logredact  # noqa: E402
from hive_project.forwarded import ForwardedFor  # noqa: E402

logredact.install()

application = ForwardedFor(WsgiBodyLimit(django_wsgi))
