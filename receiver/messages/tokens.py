"""Signed link tokens: what a link in a message names, that no one can forge or alter. Pure.

    token = base64url(JSON payload) "." base64url(HMAC-SHA256(key, purpose, payload)[:18])

The key is RECEIVER_SECRET_KEY; `purpose` ("n" for the full-notification page)
is part of what is signed, so a token made for one kind of link opens no other.
The payload carries its expiry (`e`, epoch seconds). A token is short, because
it travels inside the 2048-byte message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

SIG_BYTES = 18


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sig(secret: str, purpose: str, body: str) -> bytes:
    msg = f"{purpose}\x00{body}".encode()
    return hmac.new(secret.encode("utf-8", "surrogatepass"), msg, hashlib.sha256).digest()[
        :SIG_BYTES
    ]


def sign(secret: str, purpose: str, payload: dict[str, Any], *, expires_at: float) -> str:
    """A token for `payload`, valid for `purpose` until `expires_at`."""
    data = {**payload, "e": int(expires_at)}
    body = _b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_sig(secret, purpose, body))}"


def verify(secret: str, purpose: str, token: str, *, now: float) -> dict[str, Any] | None:
    """The payload of a good, unexpired token for `purpose`; None for anything else."""
    body, _, sig = token.partition(".")
    try:
        given = _unb64(sig)
        expected = _sig(secret, purpose, body)
        if not hmac.compare_digest(given, expected):
            return None
        data = json.loads(_unb64(body))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int) or data["e"] <= now:
        return None
    return data
