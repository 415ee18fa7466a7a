"""The signature functions against the senders' published test vectors, and every way to fail."""

from __future__ import annotations

import pytest

from external_api.webhooks.signatures import (
    SignatureError,
    github_signature,
    github_verify,
    slack_signature,
    slack_verify,
)

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# https://api.slack.com/authentication/verifying-requests-from-slack (the walkthrough's example)
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_github_signature_matches_githubs_published_vector():
    assert github_signature(GITHUB_SECRET, GITHUB_BODY) == GITHUB_SIGNATURE
    github_verify(body=GITHUB_BODY, signature=GITHUB_SIGNATURE, secrets=[GITHUB_SECRET])


@pytest.mark.parametrize(
    ("body", "signature", "secrets", "reason"),
    [
        (b"Hello, World?", GITHUB_SIGNATURE, [GITHUB_SECRET], "does not match"),
        (GITHUB_BODY, GITHUB_SIGNATURE[:-1] + "f", [GITHUB_SECRET], "does not match"),
        (GITHUB_BODY, GITHUB_SIGNATURE.replace("sha256=", "sha1="), [GITHUB_SECRET], "does not match"),
        (GITHUB_BODY, GITHUB_SIGNATURE, ["another secret"], "does not match"),
        (GITHUB_BODY, "sha256=é" + "0" * 63, [GITHUB_SECRET], "does not match"),  # not ASCII: no TypeError
        (GITHUB_BODY, None, [GITHUB_SECRET], "missing"),
        (GITHUB_BODY, GITHUB_SIGNATURE, [], "no secret"),
    ],
    ids=["body-changed", "signature-changed", "wrong-algorithm", "wrong-secret", "non-ascii", "missing", "no-secret"],
)
def test_github_verify_refuses_with_the_reason(body, signature, secrets, reason):
    with pytest.raises(SignatureError, match=reason):
        github_verify(body=body, signature=signature, secrets=secrets)


def test_github_verify_accepts_any_current_secret_during_a_rotation():
    github_verify(body=GITHUB_BODY, signature=GITHUB_SIGNATURE, secrets=["the new secret", GITHUB_SECRET])


def test_slack_signature_matches_slacks_published_example():
    assert slack_signature(SLACK_SECRET, SLACK_TIMESTAMP, SLACK_BODY) == SLACK_SIGNATURE
    slack_verify(
        body=SLACK_BODY,
        timestamp=SLACK_TIMESTAMP,
        signature=SLACK_SIGNATURE,
        secrets=[SLACK_SECRET],
        now=int(SLACK_TIMESTAMP) + 299,
    )


@pytest.mark.parametrize(
    ("timestamp", "now_offset", "reason"),
    [
        (SLACK_TIMESTAMP, 301, "more than 300 seconds"),
        (SLACK_TIMESTAMP, -301, "more than 300 seconds"),
        ("yesterday", 0, "not a number"),
        ("1531420618.5", 0, "not a number"),
        ("-1531420618", 0, "not a number"),
        ("9" * 400, 0, "not a number"),
        ("١٥٣١٤٢٠٦١٨", 0, "not a number"),  # Arabic-Indic digits pass str.isdigit()
        ("", 0, "missing"),
    ],
    ids=["stale", "future", "words", "fraction", "negative", "huge", "non-ascii-digits", "missing"],
)
def test_slack_verify_refuses_a_stale_or_malformed_timestamp(timestamp, now_offset, reason):
    with pytest.raises(SignatureError, match=reason):
        slack_verify(
            body=SLACK_BODY,
            timestamp=timestamp,
            signature=SLACK_SIGNATURE,
            secrets=[SLACK_SECRET],
            now=int(SLACK_TIMESTAMP) + now_offset,
        )


def test_slack_verify_refuses_a_changed_body_or_another_secret():
    now = int(SLACK_TIMESTAMP)
    with pytest.raises(SignatureError, match="does not match"):
        slack_verify(
            body=SLACK_BODY + b"x",
            timestamp=SLACK_TIMESTAMP,
            signature=SLACK_SIGNATURE,
            secrets=[SLACK_SECRET],
            now=now,
        )
    with pytest.raises(SignatureError, match="does not match"):
        slack_verify(body=SLACK_BODY, timestamp=SLACK_TIMESTAMP, signature=SLACK_SIGNATURE, secrets=["other"], now=now)
    # the timestamp is signed: moving it forward to look fresh breaks the signature
    with pytest.raises(SignatureError, match="does not match"):
        slack_verify(
            body=SLACK_BODY, timestamp=str(now + 1), signature=SLACK_SIGNATURE, secrets=[SLACK_SECRET], now=now
        )
