"""Posting to a DingTalk group robot: the signature, the call, and what its answers mean.

    POST <webhook>[&timestamp=MS&sign=S]   {msgtype, markdown|text|actionCard, at}

With a 加签 secret, `sign` = URL-encoded base64(HMAC-SHA256(secret, f"{MS}\\n{secret}")),
and DingTalk accepts it for an hour around MS. This is the one place where `requests`
errors and robot errcodes become receiver.errors exceptions. The webhook's
access_token, the secret and the signature never reach logs or exception text:
errors name the robot, not its URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import requests

from receiver import metrics
from receiver.errors import DingTalkError, PermanentError, RetryableError, ThrottledError
from receiver.routing.robots import Robot, redact_url

log = logging.getLogger(__name__)

BLOCK_S = 600.0  # what DingTalk does to a robot over 20 posts a minute: a 10-minute block
MAX_BODY_BYTES = 20_000  # the robot API's limit for the JSON body

SIGN_HINT = (
    "加签: `secret:` must be the robot's SEC… secret, and this host's clock right to within an hour"
)
KEYWORD_HINT = (
    "自定义关键词: one of the robot's keywords must appear in every message; put it in the template"
)
IP_HINT = "IP 地址(段): this host's egress IP (or DINGTALK_PROXY's) must be listed"
SECURITY_HINT = (
    "the robot's security setting (安全设置) refused the post; check it in the group's"
    f" robot settings. {SIGN_HINT}; {KEYWORD_HINT}; {IP_HINT}"
)
SECURITY_ERRCODE = 310000


def security_hint(errmsg: str) -> str:
    """What to fix for a 310000: the setting its errmsg names, or all three."""
    low = errmsg.lower()
    for words, hint in (("sign", SIGN_HINT), ("keyword", KEYWORD_HINT), ("ip", IP_HINT)):
        if words in low:
            return f"the robot's security setting (安全设置) refused the post: {hint}"
    return SECURITY_HINT


TOKEN_HINT = (
    "the webhook's access_token is wrong, or the robot was removed from the group:"
    " copy the Webhook URL again from the group's robot settings (群设置 > 机器人)"
)
# errcode -> (retryable?, what it means and what to do). Anything else is permanent.
ERRCODES: dict[int, tuple[bool, str]] = {
    -1: (True, "system busy"),
    SECURITY_ERRCODE: (False, SECURITY_HINT),
    300001: (False, TOKEN_HINT),
    410100: (True, "too fast: over 20 posts a minute, DingTalk blocks the robot for 10 minutes"),
}
THROTTLE_ERRCODE = 410100


def sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` query value for a 加签 robot: already URL-encoded."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def signed_url(robot: Robot, timestamp_ms: int) -> str:
    if not robot.secret:
        return robot.webhook
    query = f"timestamp={timestamp_ms}&sign={sign(robot.secret, timestamp_ms)}"
    return f"{robot.webhook}{'&' if '?' in robot.webhook else '?'}{query}"


def classify(robot: Robot, errcode: int, errmsg: str) -> DingTalkError:
    retryable, meaning = ERRCODES.get(errcode, (False, ""))
    if errcode == SECURITY_ERRCODE:
        meaning = security_hint(errmsg)
    message = f"robot {robot.name}: DingTalk errcode {errcode}: {errmsg}"
    if meaning:
        message += f"; {meaning}"
    if errcode == THROTTLE_ERRCODE:
        return ThrottledError(message, retry_after=BLOCK_S, errcode=errcode, errmsg=errmsg)
    if retryable:
        return RetryableError(message, errcode=errcode, errmsg=errmsg)
    return PermanentError(message, errcode=errcode, errmsg=errmsg)


class RobotClient:
    """Posts robot messages. One `requests.Session`, a timeout on every call, the proxy."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        proxy: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = timeout
        self.proxy = proxy
        self.clock = clock
        self._http = requests.Session()
        install_log_filter()

    def __repr__(self) -> str:
        return f"<RobotClient timeout={self.timeout}>"

    def post(self, robot: Robot, body: dict[str, Any]) -> None:
        """Post `body` to `robot`; raise a receiver.errors.DingTalkError if it is refused."""
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(data) > MAX_BODY_BYTES:
            raise PermanentError(
                f"robot {robot.name}: body of {len(data)} bytes is over {MAX_BODY_BYTES}"
            )
        url = signed_url(robot, int(self.clock() * 1000))
        proxies = {"http": self.proxy, "https": self.proxy} if self.proxy else None
        started = time.monotonic()
        try:
            res = self._http.post(
                url,
                data=data,
                headers={"Content-Type": "application/json;charset=utf-8"},
                timeout=self.timeout,
                proxies=proxies,
            )
        except requests.Timeout:
            raise RetryableError(f"robot {robot.name}: timed out") from None
        except requests.RequestException as e:  # its text holds the URL: name the type only
            raise RetryableError(f"robot {robot.name}: {type(e).__name__}") from None
        finally:
            metrics.api_duration.labels("robot_send").observe(time.monotonic() - started)
        if res.status_code == 429 or res.status_code >= 500:
            raise RetryableError(f"robot {robot.name}: HTTP {res.status_code}",
                                 status=res.status_code)  # fmt: skip
        if res.status_code >= 400:
            raise PermanentError(f"robot {robot.name}: HTTP {res.status_code}",
                                 status=res.status_code)  # fmt: skip
        try:
            reply = json.loads(res.content.decode("utf-8", "replace"))
            errcode = int(reply.get("errcode", 0) or 0)
        except (ValueError, TypeError, AttributeError):
            raise RetryableError(f"robot {robot.name}: unexpected reply (not JSON)") from None
        if errcode:
            errmsg = scrub(robot, str(reply.get("errmsg", "")))
            raise classify(robot, errcode, errmsg)


def scrub(robot: Robot, text: str) -> str:
    """`text` without the robot's credentials, whatever DingTalk chose to echo."""
    token = parse_qs(urlsplit(robot.webhook).query).get("access_token", [""])[0]
    for secret in (robot.webhook, robot.secret, token):
        if secret:
            text = text.replace(secret, "<redacted>")
    return redact_url(text)


class RedactingFilter(logging.Filter):
    """Scrubs urllib3's DEBUG lines, which print each URL with its token and sign."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_url(record.getMessage())
        record.args = None
        return True


def install_log_filter() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
