"""Signed link tokens: a good one opens, anything else does not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.messages.tokens import sign, verify

SECRET = "s3cr3t-key"


def test_a_token_carries_its_payload_until_it_expires() -> None:
    token = sign(SECRET, "n", {"n": 42}, expires_at=2000)
    assert verify(SECRET, "n", token, now=1999) == {"n": 42, "e": 2000}
    assert verify(SECRET, "n", token, now=2000) is None  # expired
    assert len(token) < 80  # it travels inside a 2048-byte message


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature
        lambda t: "e" + t[1:] if t[0] != "e" else "f" + t[1:],  # the payload
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
        lambda t: "",
    ],
)
def test_an_altered_token_is_refused(change: object) -> None:
    token = sign(SECRET, "n", {"n": 42}, expires_at=2000)
    altered = change(token)  # type: ignore[operator]
    assert altered != token
    assert verify(SECRET, "n", altered, now=1000) is None


def test_another_key_or_purpose_is_refused() -> None:
    token = sign(SECRET, "n", {"n": 42}, expires_at=2000)
    assert verify("other", "n", token, now=1000) is None
    assert verify(SECRET, "ack", token, now=1000) is None


def test_a_payload_without_an_expiry_is_refused() -> None:
    # The signature is right, but "e" is not a number: never valid.
    token = sign(SECRET, "n", {"n": 1}, expires_at=2000)
    assert verify(SECRET, "n", token, now=1000) is not None
    import base64
    import json

    from receiver.messages import tokens

    body = base64.urlsafe_b64encode(json.dumps({"n": 1, "e": "never"}).encode()).decode()
    body = body.rstrip("=")
    forged = f"{body}.{tokens._b64(tokens._sig(SECRET, 'n', body))}"
    assert verify(SECRET, "n", forged, now=1000) is None


@given(st.text(max_size=200))
def test_garbage_is_refused_never_raises(text: str) -> None:
    assert verify(SECRET, "n", text, now=0) is None
