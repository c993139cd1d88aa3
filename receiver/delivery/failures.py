"""What a failed send means for the queue: the one place a DingTalkError is classified.

    DingTalkError ──classify──► Failure
        PLATFORM   DingTalk (or the way to it) fails for everyone: pause all sending,
                   probe with one call, and never count it against the message
        TOO_LONG   refused for its size: cut the message and send it again at once
        MESSAGE    about this message (its content, its recipients): its own backoff
        PERMANENT  a retry would fail the same way: dead

The errcode table is receiver.dingtalk.errcodes.ERRCODES; this module decides what
the worker does with each class. Every sender (work notifications now; group robots
or escalation later) raises DingTalkError and goes through `classify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from receiver.dingtalk.errcodes import ERRCODES, is_too_long
from receiver.errors import DingTalkError, TokenError

# A refusal for size comes as HTTP 413 or a bad-parameter errcode. A code the table gives
# another meaning is that, whatever its errmsg says: 90020's says 超过 (the monthly quota).
SIZE_ERRCODES = frozenset({40035, 400002})
BUSY_ERRCODE = -1
PROTECTION_ERRCODE = 1430003
THROTTLE_ERRCODES = range(90001, 90020)

# How long to wait before the next probe while paused. An outage is probed soon and
# often (capped at 5 s), since DingTalk is usually back within seconds. A throttle is
# waited out: DingTalk's API rate limits (90001–90019, HTTP 429) count per second, so a
# probe goes once a second, one call in each window; `punish` blocks an egress IP for
# about 5 minutes (DINGTALK.md), and probing sooner than once a minute only risks
# prolonging it.
OUTAGE_PROBE_MAX_S = 5.0
THROTTLE_PROBE_S = 1.0
PUNISH_PROBE_S = 60.0


class Kind(Enum):
    PLATFORM = "platform"
    TOO_LONG = "too_long"
    MESSAGE = "message"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Failure:
    kind: Kind
    reason: str  # a short, bounded label: the metric's `reason`, the log's `reason=`
    throttle: bool = False  # a platform failure that is a rate limit, not an outage

    def probe_after(
        self, failures: int, first_s: float, cap_s: float = OUTAGE_PROBE_MAX_S
    ) -> float:
        """Seconds to the next probe after `failures` platform failures in a row (1, 2 …).

        An outage: `first_s` (RECEIVER_RETRY_BACKOFF_MIN), doubling, capped at `cap_s`
        (5 s, or RECEIVER_RETRY_BACKOFF_MAX if lower). A throttle: DingTalk's window.
        """
        if self.reason == "punish":
            return PUNISH_PROBE_S
        if self.throttle:
            return THROTTLE_PROBE_S  # one call a window: never more than the limit allows
        return min(cap_s, OUTAGE_PROBE_MAX_S, first_s * 2.0 ** max(0, min(failures - 1, 20)))


def classify(e: DingTalkError) -> Failure:
    """What `e` says about the message, or about DingTalk as a whole."""
    platform = _platform_reason(e)
    if platform is not None:
        throttle = platform in ("throttled", "http_429", "punish", "not_json")
        return Failure(Kind.PLATFORM, platform, throttle)
    about_size = e.errcode is None or e.errcode in SIZE_ERRCODES or e.errcode not in ERRCODES
    if is_too_long(e) and about_size:
        return Failure(Kind.TOO_LONG, "too_long")
    if e.retryable:
        return Failure(Kind.MESSAGE, "retryable")
    return Failure(Kind.PERMANENT, "permanent")


def _platform_reason(e: DingTalkError) -> str | None:
    if isinstance(e, TokenError) or e.api == "gettoken":
        return "token"  # no working token means no call of anyone's goes through
    if e.transport is not None:
        return e.transport  # network, timeout, http_5xx, http_429, not_json, punish
    if e.errcode == BUSY_ERRCODE:
        return "busy"
    if e.errcode in THROTTLE_ERRCODES:
        return "throttled"
    if e.errcode == PROTECTION_ERRCODE:
        return "platform_protection"
    return None
