"""Signed links back to the receiver: the acknowledge token. Pure (hmac, no I/O).

A token names one notification, the userid it was sent to, and when it expires:

    <notification id>.<userid, base64url>.<expiry, unix seconds>.<signature>

The signature is HMAC-SHA256 with RECEIVER_SECRET_KEY over the purpose and those
three fields, cut to 128 bits. A changed field, another key or another purpose
fails; `verify` does not say which, and never looks anything up, so a forged
token gets the same answer whether or not its notification exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

ACK_TTL_S = 24 * 3600.0
PURPOSE = "ack"
SIG_BYTES = 16
PLACEHOLDER = "~ack-token~"  # stands for a user's token in a message rendered once for all


class BadToken(Exception):
    """Forged, altered, malformed or expired: the caller answers 403 and changes nothing."""


@dataclass(frozen=True)
class AckToken:
    notification_id: int
    userid: str
    expires_at: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sig(key: str, payload: str) -> str:
    mac = hmac.new(key.encode("utf-8"), f"{PURPOSE}|{payload}".encode(), hashlib.sha256)
    return _b64(mac.digest()[:SIG_BYTES])


def sign(key: str, notification_id: int, userid: str, expires_at: float) -> str:
    if not key:
        raise ValueError("no secret key")
    payload = f"{notification_id}.{_b64(userid.encode('utf-8'))}.{int(expires_at)}"
    return f"{payload}.{_sig(key, payload)}"


def verify(key: str, token: str, now: float) -> AckToken:
    """The token's fields if `key` signed it and it has not expired; BadToken otherwise."""
    parts = token.split(".")
    if not key or len(parts) != 4:
        raise BadToken("malformed")
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _sig(key, payload)):
        raise BadToken("bad signature")
    try:
        nid, userid, exp = int(parts[0]), _unb64(parts[1]).decode("utf-8"), int(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadToken("malformed") from None
    if exp <= now:
        raise BadToken("expired")
    return AckToken(nid, userid, exp)


def ack_url(external_url: str, token: str) -> str:
    return f"{external_url.rstrip('/')}/ack/{token}"


@dataclass(frozen=True)
class AckLinks:
    """The acknowledge links of one notification: one per userid, signed when planned."""

    external_url: str
    key: str
    notification_id: int
    expires_at: float

    def url(self, userid: str) -> str:
        return ack_url(self.external_url, sign(self.key, self.notification_id, userid,
                                               self.expires_at))  # fmt: skip

    def placeholder(self, userids: list[str] | tuple[str, ...]) -> str:
        """A stand-in URL at least as long as any of these users' links (so the budget holds)."""
        longest = max((len(self.url(u)) for u in userids), default=0)
        base = ack_url(self.external_url, PLACEHOLDER)
        return base + "0" * max(0, longest - len(base))

    def personal(self, text: str, placeholder: str, userid: str) -> str:
        return text.replace(placeholder, self.url(userid))
