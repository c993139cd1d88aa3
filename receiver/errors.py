"""The one exception tree of the receiver.

    ReceiverError
    ├── ConfigError            routing.yaml / templates invalid; carries every problem found
    ├── PayloadError           a webhook body we refuse; carries the HTTP status and JSON path
    ├── OutboxUnavailable      the outbox could not take a write (the webhook answers 503)
    ├── SilenceError           Alertmanager refused or did not answer a silence (ALERTMANAGER_URL)
    └── DingTalkError          a DingTalk call failed; translated once, in receiver.dingtalk.client
        ├── RetryableError     network, timeout, 5xx/429, -1, 90001-90019, 1430003, punish
        │   └── ThrottledError a group robot posted too fast (410100): wait `retry_after`
        ├── TokenError         the token stayed bad after one refresh
        └── PermanentError     anything else: a retry would fail the same way

Lower-level errors (requests, sqlite3, yaml, json) are translated into this tree
in exactly one place each and never leak past the module that owns the resource.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReceiverError(Exception):
    """Base of every error the receiver raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def not_utf8(file: str, raw: bytes, e: UnicodeDecodeError) -> ConfigProblem:
    """Where a file stops being UTF-8 (say, a comment saved in GBK): its line, and what to do."""
    line = raw.count(b"\n", 0, e.start) + 1
    return ConfigProblem(file, line, f"not UTF-8 (byte 0x{raw[e.start]:02x}); save it as UTF-8")


class ConfigError(ReceiverError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PayloadError(ReceiverError):
    """A request body that cannot become a Notification."""

    def __init__(self, message: str, *, path: str = "$", status: int = 400) -> None:
        self.message = message
        self.path = path
        self.status = status
        super().__init__(f"{path}: {message}" if path else message)


class OutboxUnavailable(ReceiverError):
    """The outbox could not commit; nothing was accepted."""


class SilenceError(ReceiverError):
    """Creating an Alertmanager silence failed; the message says why, without secrets."""


class DingTalkError(ReceiverError):
    """A DingTalk call failed. Never carries the access token or the app secret."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        errcode: int | None = None,
        errmsg: str = "",
        status: int | None = None,
        transport: str | None = None,
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.status = status
        # What failed below the errcode, when the call got no usable answer at all:
        # "network", "timeout", "http_5xx", "http_429", "not_json", "punish" (set by the client).
        self.transport = transport
        self.api: str | None = None  # the API that failed ("gettoken", "asyncsend_v2"), if known
        super().__init__(message)


class RetryableError(DingTalkError):
    retryable = True


class ThrottledError(RetryableError):
    """DingTalk refused for the rate: nothing goes through before `retry_after` seconds."""

    def __init__(
        self, message: str, *, retry_after: float, errcode: int | None = None, errmsg: str = ""
    ) -> None:
        super().__init__(message, errcode=errcode, errmsg=errmsg)
        self.retry_after = retry_after


class TokenError(DingTalkError):
    retryable = True


class PermanentError(DingTalkError):
    retryable = False
