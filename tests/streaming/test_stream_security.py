"""The stream keeps teams apart against a hostile browser page and outlived credentials: origins
checked per credential, credentials checked again while the stream is open, credentials that
need not travel in URLs, and unknown keys throttled per address."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from external_api.services import apikey_revoke
from hive_project.config import ConfigError, load_config
from tests.streaming.conftest import TIMEOUT, apublish, connect, open_stream, refused_with, run

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"127.0.0.1:8000")


@pytest.fixture
def security_config(settings):
    """`security_config(allowed_origins=[...])` changes security.event_streaming;
    `security_config(throttling={...})` security.authentication_throttling."""

    def change(*, throttling: dict[str, Any] | None = None, **streaming: Any) -> None:
        config = settings.HIVE_CONFIG
        security = config.security
        update: dict[str, Any] = {}
        if streaming:
            update["event_streaming"] = security.event_streaming.model_copy(update=streaming)
        if throttling:
            update["authentication_throttling"] = security.authentication_throttling.model_copy(update=throttling)
        settings.HIVE_CONFIG = config.model_copy(update={"security": security.model_copy(update=update)})

    return change


def session_cookie(user) -> tuple[bytes, bytes]:
    browser = Client()
    browser.force_login(user)
    return b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode()


def origin(value: str) -> tuple[bytes, bytes]:
    return b"origin", value.encode()


async def closed_with(stream, timeout: float = TIMEOUT) -> tuple[int, str, float]:
    """Read until the server closes the stream: (code, reason, seconds it took)."""
    started = time.monotonic()
    while True:
        output = await stream.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            await stream.communicator.disconnect()
            return output.get("code"), output.get("reason", ""), time.monotonic() - started


# --- origins ---------------------------------------------------------------------------------------
def test_stream_origin_foreign_pages_with_the_session_cookie_are_refused_with_4403(world):
    """The API's CORS is `*` (the default): that must not let any site read the stream with the
    signed-in user's cookie."""
    cookie = session_cookie(world.staff)

    async def scenario():
        codes = {}
        for page in ("http://evil.example", "http://127.0.0.1:3000", "null", "http://localhost:8000"):
            codes[page] = await refused_with(headers=[cookie, origin(page), HOST])
        return codes

    codes = run(scenario())
    assert {page: code for page, (code, _) in codes.items()} == {
        "http://evil.example": 4403,
        "http://127.0.0.1:3000": 4403,
        "null": 4403,
        "http://localhost:8000": 4403,
    }
    assert codes["http://evil.example"][1] == "a page from http://evil.example may not open this stream"


def test_stream_origin_same_origin_and_configured_origins_may_use_the_session(world, security_config):
    security_config(allowed_origins=["https://dash.example.com"])
    cookie = session_cookie(world.alice)

    async def scenario():
        welcomes = []
        for page in ("http://127.0.0.1:8000", "https://dash.example.com"):
            stream = await open_stream(headers=[cookie, origin(page), HOST])
            welcomes.append(stream.welcome["viewer"])
            await stream.close()
        refused = await refused_with(headers=[cookie, origin("https://other.example.com"), HOST])
        return welcomes, refused

    welcomes, refused = run(scenario())
    assert [w["kind"] for w in welcomes] == ["session", "session"]
    assert all(w["team"] == world.acme.id for w in welcomes)
    assert refused[0] == 4403


def test_stream_origin_a_socket_with_its_own_key_may_come_from_a_gateway_origin(world):
    """A page that holds an API key is not riding on anyone's cookie: the gateway's CORS origins
    (here the default `*`) apply to it, as they do to fetch() without credentials."""

    async def scenario():
        stream = await open_stream(headers=[(b"x-api-key", world.acme_key.encode()), origin("http://evil.example")])
        await stream.close()
        return stream.welcome["viewer"]

    assert run(scenario())["kind"] == "api_key"


def test_stream_origin_star_in_the_streams_list_is_refused_at_config_load():
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"LEANVIBE_SECURITY_EVENT_STREAMING_ALLOWED_ORIGINS": '["https://a.example", "*"]'})
    assert str(caught.value).startswith("security.event_streaming.allowed_origins[1] = '*': expected origins")


# --- credentials that stop being valid ---------------------------------------------------------------
def test_stream_revoked_key_is_closed_with_4401_within_a_heartbeat(world, stream_config):
    stream_config(heartbeat_interval=0.5, batch_size=1)

    async def scenario():
        stream = await open_stream(headers=[(b"x-api-key", world.acme_key.encode())])
        before = await apublish("custom.before")
        await stream.until_events([before])
        await database_sync_to_async(apikey_revoke)(prefix=world.acme_key)
        code, reason, waited = await closed_with(stream)
        return code, reason, waited

    code, reason, waited = run(scenario())
    assert (code, reason) == (4401, "API key revoked or expired")
    assert waited < 0.5 + 1.0  # one heartbeat, plus the time to ask the database


def test_stream_expired_jwt_is_closed_with_4401_when_it_expires(world, stream_config):
    """The check follows the token's own expiry, even with a long heartbeat."""
    stream_config(heartbeat_interval=30)
    token = AccessToken.for_user(world.alice)
    token.set_exp(lifetime=timedelta(seconds=1.5))

    async def scenario():
        stream = await open_stream(headers=[(b"authorization", f"Bearer {token}".encode())])
        return await closed_with(stream, timeout=6)

    code, reason, waited = run(scenario())
    assert (code, reason) == (4401, "invalid or expired token")
    assert waited < 4


def test_stream_signed_out_session_and_deactivated_user_are_closed_with_4401(world, stream_config):
    stream_config(heartbeat_interval=0.4)
    browser = Client()
    browser.force_login(world.alice)
    cookie = (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())
    jwt = str(AccessToken.for_user(world.staff))

    def deactivate_staff() -> None:
        world.staff.is_active = False
        world.staff.save(update_fields=["is_active"])

    async def scenario():
        by_session = await open_stream(headers=[cookie])
        by_token = await open_stream(headers=[(b"authorization", f"Bearer {jwt}".encode())])
        await database_sync_to_async(browser.logout)()
        await database_sync_to_async(deactivate_staff)()
        return await closed_with(by_session), await closed_with(by_token)

    (session_code, session_reason, _), (token_code, _, _) = run(scenario())
    assert (session_code, session_reason) == (4401, "the session ended")
    assert token_code == 4401


def test_stream_a_closed_stream_sends_no_more_events(world, stream_config):
    stream_config(heartbeat_interval=0.3, batch_size=1)

    async def scenario():
        stream = await open_stream(headers=[(b"x-api-key", world.acme_key.encode())])
        await database_sync_to_async(apikey_revoke)(prefix=world.acme_key)
        code, _, _ = await closed_with(stream)
        await apublish("custom.after_revocation")
        return code, stream.events

    code, events = run(scenario())
    assert code == 4401 and events == []


# --- credentials outside the URL -----------------------------------------------------------------------
def test_stream_credentials_in_headers_and_subprotocols_answer_hive_v1(world):
    jwt = str(AccessToken.for_user(world.alice))

    async def scenario():
        found = []
        for headers, protocols in (
            ([(b"x-api-key", world.acme_key.encode())], None),
            ([(b"authorization", f"Bearer {jwt}".encode())], None),
            ([], ["hive.v1", f"bearer.{jwt}"]),
            ([], ["hive.v1", f"apikey.{world.acme_key}"]),
        ):
            communicator = await connect(headers=headers, subprotocols=protocols)
            accepted, subprotocol = await communicator.connect(timeout=TIMEOUT)
            welcome = json.loads(await communicator.receive_from(TIMEOUT))
            found.append((accepted, subprotocol, welcome["viewer"]["kind"], welcome["viewer"]["team"]))
            await communicator.disconnect()
        return found

    acme = world.acme.id
    assert run(scenario()) == [
        (True, None, "api_key", acme),
        (True, None, "jwt", acme),
        (True, "hive.v1", "jwt", acme),
        (True, "hive.v1", "api_key", acme),
    ]


def test_stream_a_credential_offered_as_subprotocol_is_never_echoed(world):
    async def scenario():
        communicator = await connect(subprotocols=[f"apikey.{world.acme_key}"])
        accepted, subprotocol = await communicator.connect(timeout=TIMEOUT)
        await communicator.disconnect()
        return accepted, subprotocol

    assert run(scenario()) == (True, None)


# --- throttling ------------------------------------------------------------------------------------------
def test_stream_unknown_keys_from_one_address_are_throttled_with_4429(world, security_config):
    security_config(throttling={"max_failures_per_address": 3, "lockout_duration": 60})

    async def scenario():
        codes = [(await refused_with(headers=[(b"x-api-key", b"hive_nothere_guess%d" % i)]))[0] for i in range(3)]
        locked = await refused_with(headers=[(b"x-api-key", world.acme_key.encode())])
        return codes, locked

    codes, (locked_code, locked_reason) = run(scenario())
    assert codes == [4401, 4401, 4401]
    assert locked_code == 4429 and "too many failed authentications" in locked_reason
