"""Webhook authentication. Pure: headers, body and configured secrets in, a bool out.

Policy (docs/auth.md):
- RECEIVER_WEBHOOK_TOKEN and/or RECEIVER_BASIC_AUTH set: every webhook request must carry
  one of them, valid, in `Authorization` (`Bearer <token>` or `Basic <base64 user:pass>`).
- RECEIVER_GRAFANA_HMAC_SECRET set: requests to /grafana must also carry a valid Grafana
  HMAC-SHA256 signature. /alertmanager is unaffected (Alertmanager cannot sign).
- Nothing set: open.
Every comparison is constant-time, and the answer is one bool, so a 401 cannot say which
part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

# The header Grafana's UI suggests (grafana/alerting receivers/webhook/v1/config.go) and
# the one its code falls back to when the field is left empty (http/hmac.go).
SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
SIGNATURE_HEADER_FALLBACK = "X-Grafana-Alert-Signature"
# Grafana has no default; docs/grafana.md tells operators to enter this name.
TIMESTAMP_HEADER = "X-Grafana-Alerting-Timestamp"
REPLAY_WINDOW_S = 300


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive look-up that works for plain dicts and Werkzeug's Headers."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, v in headers.items():
        if key.lower() == lower:
            return v
    return None


def _same(a: bytes, b: bytes) -> bool:
    # Compare digests so neither the length nor the content of the secret leaks in timing.
    return hmac.compare_digest(hashlib.sha256(a).digest(), hashlib.sha256(b).digest())


def check_webhook_auth(headers: Mapping[str, str], *, token: str | None, basic: str | None) -> bool:
    """True if neither is configured, or `Authorization` carries a configured one."""
    if not token and not basic:
        return True
    value = _header(headers, "Authorization")
    if not value:
        return False
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    scheme = scheme.lower()
    ok = False
    if scheme == "bearer" and token:
        # A WSGI server hands header bytes over decoded as Latin-1 (PEP 3333), and the
        # senders send UTF-8: the bytes are those Latin-1 gives back.
        want = token.encode("utf-8")
        ok = _same(credentials.encode("utf-8", "surrogatepass"), want)
        if not ok and not credentials.isascii() and max(map(ord, credentials)) < 256:
            ok = _same(credentials.encode("latin-1"), want)
    elif scheme == "basic" and basic:
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return False
        ok = _same(decoded, basic.encode("utf-8"))
    return ok


def grafana_signature(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """Lowercase hex HMAC-SHA256 as Grafana computes it: over body, or "<ts>:" + body."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    if timestamp is not None:
        mac.update(timestamp.encode("ascii") + b":")
    mac.update(body)
    return mac.hexdigest()


def check_grafana_hmac(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str,
    now: float,
    window_s: int = REPLAY_WINDOW_S,
    header: str = SIGNATURE_HEADER,
    timestamp_header: str = TIMESTAMP_HEADER,
    require_timestamp: bool = False,
) -> bool:
    """Verify Grafana's webhook signature.

    With the timestamp header present the MAC covers "<ts>:" + body and ts must lie within
    window_s of now (either side); stripping the header cannot help an attacker, since the
    body-only MAC would then not match. Without it the MAC covers the body alone, unless
    require_timestamp is set.
    """
    signature = _header(headers, header) or _header(headers, SIGNATURE_HEADER_FALLBACK)
    if not signature:
        return False
    timestamp = _header(headers, timestamp_header)
    if timestamp is None:
        if require_timestamp:
            return False
    else:
        timestamp = timestamp.strip()
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            return False
        if abs(now - int(timestamp)) > window_s:
            return False
    expected = grafana_signature(secret, body, timestamp)
    given = signature.strip().lower().encode("utf-8", "surrogatepass")
    return _same(given, expected.encode("ascii"))


def check_signature(
    headers: Mapping[str, str], body: bytes, *, grafana: bool, hmac_secret: str | None, now: float
) -> bool:
    """Grafana's HMAC where it is asked for (`grafana`: on /grafana[/<receiver>]).

    The second half of a webhook's policy; the first, `check_webhook_auth`, needs only
    the headers and goes before the body is read. A request must pass both."""
    if not (grafana and hmac_secret):
        return True
    return check_grafana_hmac(headers, body, secret=hmac_secret, now=now)
