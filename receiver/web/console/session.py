"""Console access: the login token, the signed session cookie and CSRF tokens.

- `/console/login` takes the form field `token`. It is compared with
  RECEIVER_CONSOLE_TOKEN as SHA-256 digests with `hmac.compare_digest`, so the
  time and the answer are the same however wrong a token is.
- A good token sets `console_session`: signed with RECEIVER_SECRET_KEY
  (itsdangerous), HttpOnly, SameSite=Strict, Path=/console/, Secure on HTTPS,
  valid for SESSION_MAX_AGE_S. It carries a digest of the console token, so
  changing the token ends every session, and the session's CSRF token.
- Every POST carries that CSRF token in the form field `csrf`. The login form,
  before any session, uses a double-submit cookie (`console_login`) instead.
- An address that gets LOGIN_FAILURES wrong tokens within LOGIN_WINDOW_S gets 429,
  with Retry-After, until the oldest of them leaves the window; a guesser gets
  LOGIN_FAILURES tries per window, per address and per web worker.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from flask import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers.response import Response

SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
COOKIE_PATH = "/console/"
SESSION_MAX_AGE_S = 12 * 3600
LOGIN_MAX_AGE_S = 3600
LOGIN_FAILURES = 10
LOGIN_WINDOW_S = 300.0
LOGIN_ADDRESSES = 10_000  # addresses remembered; the longest quiet is forgotten first


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Session:
    csrf: str


class Access:
    """Checks the console token and issues and reads sessions."""

    def __init__(self, console_token: str, secret_key: str) -> None:
        self._token = _digest(console_token)
        # Names the token without revealing it; a new token makes old sessions invalid.
        self._token_id = hmac.new(secret_key.encode(), self._token, "sha256").hexdigest()[:16]
        self._signer = URLSafeTimedSerializer(secret_key, salt="console-session")

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(_digest(given), self._token)

    def new_session(self) -> tuple[Session, str]:
        csrf = secrets.token_urlsafe(24)
        return Session(csrf), self._signer.dumps({"t": self._token_id, "c": csrf})

    def session(self, request: Request) -> Session | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw, max_age=SESSION_MAX_AGE_S)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or data.get("t") != self._token_id:
            return None
        csrf = data.get("c")
        return Session(csrf) if isinstance(csrf, str) and csrf else None


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected and given) and hmac.compare_digest(
        (expected or "").encode(), (given or "").encode()
    )


def set_cookie(reply: Response, request: Request, name: str, value: str, max_age: int) -> None:
    reply.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )


def clear_cookie(reply: Response, name: str) -> None:
    reply.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="Strict")


class LoginLimiter:
    """Counts wrong tokens per client address in a sliding window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        failures = self._failures.get(address)
        if failures is None:
            return 0.0
        now = self._clock()
        while failures and failures[0] <= now - LOGIN_WINDOW_S:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return 0.0
        if len(failures) < LOGIN_FAILURES:
            return 0.0
        return failures[0] + LOGIN_WINDOW_S - now

    def failed(self, address: str) -> None:
        failures = self._failures.pop(address, None) or deque()
        failures.append(self._clock())
        self._failures[address] = failures  # to the end: the most recently active
        while len(self._failures) > LOGIN_ADDRESSES:
            self._failures.popitem(last=False)
