"""What DingTalk's answers mean: the errcode table, and the redaction of secrets in its URLs."""

from __future__ import annotations

import logging
import re
import socket
import ssl
from urllib.parse import urlsplit

from receiver.errors import DingTalkError, PermanentError, RetryableError, TokenError

# The one classification table. docs/delivery.md shows the same table; a test holds
# them together. Transport failures are classified in `Client._request`: network
# errors, timeouts, HTTP 5xx and 429, a non-JSON or `punish` reply are retryable;
# another HTTP 4xx is permanent. An errcode not listed here is permanent.
RETRYABLE, TOKEN, PERMANENT = "retryable", "token", "permanent"
ERRCODES: dict[int, tuple[str, str]] = {
    -1: (RETRYABLE, "system busy"),
    **{code: (RETRYABLE, "throttled") for code in range(90001, 90020)},
    1430003: (RETRYABLE, "platform protection"),
    40014: (TOKEN, "invalid access_token"),
    42001: (TOKEN, "access_token expired"),
    40001: (TOKEN, "bad credential"),
    33001: (TOKEN, "bad corp"),
    # /gettoken with a wrong or revoked DINGTALK_APP_SECRET. A token error, not a permanent
    # one: the pages wait and go out once the secret is fixed (docs/delivery.md, Token errors).
    40089: (TOKEN, "bad DINGTALK_APP_KEY or DINGTALK_APP_SECRET"),
    40035: (PERMANENT, "bad parameter"),
    400002: (PERMANENT, "bad parameter"),
    43004: (PERMANENT, "bad Content-Type (a receiver bug)"),
    40056: (PERMANENT, "bad DINGTALK_APP_AGENT_ID"),
    52019: (PERMANENT, "bad DINGTALK_APP_AGENT_ID"),
    60011: (PERMANENT, "the app lacks a permission: grant it in the DingTalk developer console"),
    60020: (
        PERMANENT,
        "the caller IP is not on the app's whitelist:"
        " whitelist the egress IP or set DINGTALK_PROXY",
    ),
    90020: (PERMANENT, "the monthly API quota is used up"),
}
TOKEN_ERRCODES = frozenset(c for c, (kind, _) in ERRCODES.items() if kind == TOKEN)
RETRYABLE_ERRCODES = frozenset(c for c, (kind, _) in ERRCODES.items() if kind == RETRYABLE)
GATEWAY_ERRCODE = 88  # topapi's gateway error: the real reason is in sub_code

_SECRET_QUERY = re.compile(r"((?:access_token|appsecret|session)=)[^&\s'\"]+", re.IGNORECASE)


def network_reason(e: BaseException, url: str, proxy: str | None, kind: str | None = None) -> str:
    """`ConnectionError to oapi.dingtalk.com:443: connection refused`: which host, and why.

    Only the host (and the proxy's host) is named: never the URL, whose query string
    holds the app secret on /gettoken, nor a proxy's user:password.
    """
    host = _hostport(url)
    reason, seen = type(e).__name__, set()
    todo: list[BaseException] = [e]
    while todo:
        x = todo.pop(0)
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, socket.gaierror):
            reason = f"cannot resolve the host name ({x.strerror})"
            break
        if isinstance(x, ssl.SSLError):
            reason = f"TLS failed ({x.reason or x.strerror or type(x).__name__})"
            break
        if isinstance(x, ConnectionRefusedError):
            reason = "connection refused"
            break
        if isinstance(x, TimeoutError):
            reason = "timed out connecting"
            break
        if isinstance(x, OSError) and x.strerror:
            reason = x.strerror
            break
        todo += [a for a in x.args if isinstance(a, BaseException)]
        todo += [c for c in (getattr(x, "reason", None), x.__cause__, x.__context__)
                 if isinstance(c, BaseException)]  # fmt: skip
    via = f" via proxy {_hostport(proxy)}" if proxy else ""
    return redact(f"{kind or type(e).__name__} to {host}{via}: {reason}")


def _hostport(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    return f"{parts.hostname}:{port}"


def redact(text: str) -> str:
    """Remove token and secret values from a URL or message."""
    return _SECRET_QUERY.sub(r"\1<redacted>", text)


class RedactingFilter(logging.Filter):
    """Scrubs the sdk's log records, which print URLs with `access_token=` in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def install_log_filter() -> None:
    """Scrub the loggers that print DingTalk URLs: the sdk's, and urllib3's at DEBUG.

    A logger's filters do not see records from its children, so each one gets its own.
    """
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "dingtalk"]
    for name in ["dingtalk", "urllib3.connectionpool", *names]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


TOO_LONG_WORDS = ("too long", "too large", "exceed", "长度", "过长", "超长", "超过")


def is_too_long(e: DingTalkError) -> bool:
    """DingTalk refused the message for its size (HTTP 413, or an errmsg that says so)."""
    return e.status == 413 or any(w in (e.errmsg or "").lower() for w in TOO_LONG_WORDS)


def classify(errcode: int, errmsg: str, sub_code: str | None = None) -> DingTalkError:
    """Turn a non-zero errcode into the exception that says what to do about it."""
    message = f"DingTalk errcode {errcode}: {errmsg}"
    if sub_code:
        message += f" (sub_code {sub_code})"
    code = errcode
    if errcode == GATEWAY_ERRCODE and sub_code and sub_code.lstrip("-").isdigit():
        code = int(sub_code)  # 88 is classified by its sub_code
    kind, action = ERRCODES.get(code, (PERMANENT, ""))
    # errcode carries the effective code (the sub_code of an 88), which is what to act on
    if kind == TOKEN:  # one that names a setting says so: the operator acts on that
        hint = f"; {action}: check it" if "DINGTALK_" in action else ""
        return TokenError(message + hint, errcode=code, errmsg=errmsg)
    if kind == RETRYABLE:
        return RetryableError(message, errcode=code, errmsg=errmsg)
    return PermanentError(
        f"{message}; {action}" if action else message, errcode=code, errmsg=errmsg
    )


def unexpected_reply(path: str, what: str) -> RetryableError:
    """A reply DingTalk should not give: retry it, as DINGTALK.md asks of any surprise."""
    return RetryableError(f"DingTalk {path}: unexpected reply ({what})")
