"""The stream's switches and credentials follow the configuration, read on every connection."""

from __future__ import annotations

import pytest

from external_api.streaming.auth import credentials
from tests.streaming.conftest import refused_with, run

pytestmark = pytest.mark.django_db(transaction=True)


def _with(settings, **sections) -> None:
    config = settings.HIVE_CONFIG
    settings.HIVE_CONFIG = config.model_copy(update=sections)


@pytest.mark.parametrize("switch", ["external_api.enabled", "external_api.event_streaming.enabled"])
def test_streaming_off_refuses_the_websocket(world, settings, switch):
    api = settings.HIVE_CONFIG.external_api
    if switch == "external_api.enabled":
        _with(settings, external_api=api.model_copy(update={"enabled": False}))
    else:
        streaming = api.event_streaming.model_copy(update={"enabled": False})
        _with(settings, external_api=api.model_copy(update={"event_streaming": streaming}))

    code, reason = run(refused_with(f"api_key={world.acme_key}"))

    assert (code, reason) == (1013, "event streaming is disabled")


def test_stream_token_is_read_from_the_configured_header_and_prefix(settings):
    security = settings.HIVE_CONFIG.security
    auth = security.event_streaming.authentication.model_copy(
        update={"token_header": "X-Hive-Token", "token_prefix": "Token"}
    )
    streaming = security.event_streaming.model_copy(update={"authentication": auth})
    _with(settings, security=security.model_copy(update={"event_streaming": streaming}))

    assert credentials({"headers": [(b"x-hive-token", b"Token abc.def")], "query_string": b""}) == ("jwt", "abc.def")
    assert credentials({"headers": [(b"authorization", b"Bearer abc.def")], "query_string": b""}) is None
