"""The hive's settings (middleware, database, cache, DRF defaults), plus the peer's app and its
URLconf instead of the hive's routes. `/health` is answered by the hive's probes middleware."""

from hive_project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.peer"]  # noqa: F405
ROOT_URLCONF = "bench.peer.urls"
