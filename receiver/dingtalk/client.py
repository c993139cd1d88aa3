"""The DingTalk client: a thin `AppKeyClient` subclass that corrects dingtalk-sdk 1.3.8.

This is the only module that imports dingtalk-sdk, and the one place where
network errors and DingTalk errcodes become `receiver.errors` exceptions.
What it corrects (DINGTALK.md, "what the wrapper must correct"):

- asyncsend_v2 is POSTed as a JSON body to the oapi path, never via `top_request`;
- every call has a timeout and goes through `DINGTALK_PROXY` when set;
- each client has its own connections (the sdk shares one `requests.Session`
  class-wide), kept open between calls as DingTalk's HTTP/1.1 allows
  (receiver.dingtalk.transport: `http.client`, a third of requests' CPU a call);
- a bad token (40014/42001/40001/33001, or 88 with those sub_codes) drops the
  cached token and retries once, without recursion;
- tokens are cached with a safety margin before `expires_in`;
- the access token and app secret never reach logs or exception text.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from dingtalk.client import AppKeyClient
from dingtalk.storage.kvstorage import KvStorage

from receiver import metrics
from receiver.dingtalk.errcodes import (
    ERRCODES,
    classify,
    install_log_filter,
    is_too_long,
    network_reason,
    redact,
    unexpected_reply,
)
from receiver.dingtalk.tokenstore import PgKv, SqliteKv
from receiver.dingtalk.transport import NetworkError, Timeout, Transport
from receiver.errors import DingTalkError, PermanentError, RetryableError, TokenError
from receiver.settings import Settings

__all__ = [
    "ERRCODES",
    "Client",
    "SendResult",
    "classify",
    "install_log_filter",
    "is_too_long",
    "redact",
]

log = logging.getLogger(__name__)

ASYNCSEND_PATH = "/topapi/message/corpconversation/asyncsend_v2"
GETSENDRESULT_PATH = "/topapi/message/corpconversation/getsendresult"
STATUS_BAR_PATH = "/topapi/message/corpconversation/status_bar/update"
MAX_USERIDS_PER_CALL = 100
TOKEN_MARGIN_S = 300
# A client keeps the token it read from the shared cache this long before it reads
# it again (a SQLite or PostgreSQL transaction a call otherwise). The cache keeps a
# token 300 s short of DingTalk's expiry (TOKEN_MARGIN_S; half its life when that is
# shorter), and a token
# DingTalk refuses is read again at once.
TOKEN_MEMO_S = 10.0
# What the sdk passes to `_request`; its result_processor and top_response_key are unused.
_REQUEST_KWARGS = frozenset(
    {"params", "data", "headers", "timeout", "result_processor", "top_response_key",
     "api_base_url"}
)  # fmt: skip


@dataclass(frozen=True)
class SendResult:
    task_id: int
    request_id: str
    userids: tuple[str, ...]


def shared_storage(data_dir: str, database_url: str | None = None) -> Any:
    """dingtalk-sdk's KvStorage over the token cache: SQLite in RECEIVER_DATA_DIR, or
    PostgreSQL with RECEIVER_DATABASE_URL (shared by every replica)."""
    kv = PgKv(database_url) if database_url else SqliteKv(data_dir)
    return KvStorage(kv, prefix="dingtalk-receiver")


class Client(AppKeyClient):  # type: ignore[misc]
    """`AppKeyClient` with settings injected and the sdk's flaws corrected."""

    def __init__(self, settings: Settings, storage: Any = None) -> None:
        """`storage` defaults to the token cache every process on the host shares."""
        if settings.dry_run:
            raise ValueError("DingTalk credentials are not set")
        super().__init__(
            corp_id=settings.app_key,
            app_key=settings.app_key,
            app_secret=settings.app_secret,
            storage=storage
            if storage is not None
            else shared_storage(settings.data_dir, settings.database_url),
            timeout=settings.http_timeout,
            auto_retry=False,
        )
        self.API_BASE_URL = (
            settings.api_base if settings.api_base.endswith("/") else settings.api_base + "/"
        )
        self.agent_id = int(str(settings.agent_id))
        self.proxy = settings.proxy
        self._http = Transport(self.proxy)  # per client, not the sdk's class-wide session
        self._memo: tuple[str, float] | None = None  # (token, time.monotonic() to keep it to)
        self._endpoints: dict[str, tuple[str, str, Any]] = {}  # _endpoint's
        install_log_filter()

    def __repr__(self) -> str:
        return f"<dingtalk Client app_key={self.app_key!r} agent_id={self.agent_id}>"

    # -- transport: the only place that touches the network --------------------------------
    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        try:
            return self._transport(method, url_or_endpoint, **kwargs)
        except DingTalkError as e:  # say which API failed: a failed gettoken fails every send
            e.api = url_or_endpoint.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            raise

    def _transport(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        url, path, timer = self._endpoint(url_or_endpoint)
        unknown = set(kwargs) - _REQUEST_KWARGS
        if unknown:  # files=, say: an sdk call the receiver does not make
            raise TypeError(f"unsupported request arguments: {', '.join(sorted(unknown))}")
        data = kwargs.get("data")
        headers = dict(kwargs.get("headers") or {})
        if isinstance(data, dict):
            data = json.dumps(data, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif isinstance(data, str):
            data = data.encode("utf-8")
        started = time.monotonic()
        try:
            res = self._http.request(
                method, url, params=kwargs.get("params"), data=data, headers=headers,
                timeout=kwargs.get("timeout") or self.timeout,
            )  # fmt: skip
        except Timeout:
            raise RetryableError(f"DingTalk {path}: timed out", transport="timeout") from None
        except NetworkError as e:
            why = network_reason(e.cause, url, self.proxy, kind=e.kind)
            raise RetryableError(f"DingTalk {path}: {why}", transport="network") from None
        finally:
            timer.observe(time.monotonic() - started)
        if res.status == 429 or res.status >= 500:
            kind = "http_429" if res.status == 429 else "http_5xx"
            raise RetryableError(
                f"DingTalk {path}: HTTP {res.status}", status=res.status, transport=kind
            )
        if res.status >= 400:
            raise PermanentError(f"DingTalk {path}: HTTP {res.status}", status=res.status)
        try:
            result = json.loads(res.content.decode("utf-8", "replace"))
        except ValueError:
            raise RetryableError(
                f"DingTalk {path}: reply is not JSON (throttled?)", transport="not_json"
            ) from None
        if not isinstance(result, dict):
            raise RetryableError(f"DingTalk {path}: unexpected reply", transport="not_json")
        if "punish" in result:
            raise RetryableError(
                f"DingTalk {path}: throttled ({result.get('punish')})", transport="punish"
            )
        try:
            errcode = int(result.get("errcode", 0) or 0)
        except (TypeError, ValueError):
            raise unexpected_reply(path, "errcode is not a number") from None
        if errcode:
            sub = result.get("sub_code")
            err = classify(
                errcode, redact(str(result.get("errmsg", ""))), str(sub) if sub else None
            )
            err.args = (f"{path}: {err.args[0]}",)
            raise err
        return result

    def _endpoint(self, url_or_endpoint: str) -> tuple[str, str, Any]:
        """The URL of an endpoint, its path (for errors) and its API's duration metric;
        worked out once per endpoint and token."""
        found = self._endpoints.get(url_or_endpoint)
        if found is None:
            url = url_or_endpoint
            if not url.startswith(("http://", "https://")):
                url = urljoin(self.API_BASE_URL, url.lstrip("/"))
            path = url.split("?", 1)[0].replace(self.API_BASE_URL.rstrip("/"), "") or "/"
            api = path.rstrip("/").rsplit("/", 1)[-1]
            if len(self._endpoints) >= 256:  # a new token a few times a day: never many
                self._endpoints.clear()
            found = self._endpoints[url_or_endpoint] = (url, path, metrics.api_duration.labels(api))
        return found

    def _handle_pre_request(self, method: str, uri: str, kwargs: dict[str, Any]) -> Any:
        """The sdk's, with the token `call` already read (one token-cache read a call)."""
        token = kwargs.pop("token", None)
        if token is None:
            return super()._handle_pre_request(method, uri, kwargs)
        return method, f"{uri}{'&' if '?' in uri else '?'}access_token={token}", kwargs

    @property
    def access_token(self) -> str:
        memo = self._memo
        if memo is not None and time.monotonic() < memo[1]:
            return memo[0]
        token = self._shared_token()
        self._memo = (token, time.monotonic() + TOKEN_MEMO_S)
        return token

    def _shared_token(self) -> str:
        """The token in the cache every process shares; fetched when it has none."""
        token = self.cache.access_token.get()
        if token is None:
            lock = getattr(getattr(self.storage, "kvdb", None), "lock", None)
            with lock() if lock else nullcontext():  # one fetch for every process on the host
                token = self.cache.access_token.get()
                if token is None:
                    ret = self.get_access_token()
                    token = ret.get("access_token")
                    try:
                        expires_in = int(ret.get("expires_in", 7200))
                    except (TypeError, ValueError):
                        raise unexpected_reply("/gettoken", "no expires_in") from None
                    if not isinstance(token, str) or not token:
                        raise unexpected_reply("/gettoken", "no access_token")
                    metrics.token_refreshes.inc()
                    # Refresh before it runs out: 300 s early, or halfway for a short life.
                    ttl = max(1, expires_in - TOKEN_MARGIN_S, expires_in // 2)
                    self.cache.access_token.set(value=token, ttl=ttl)
        return str(token)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body to a topapi path; on a bad token, refresh once and retry once."""
        used = self.access_token
        try:
            result: dict[str, Any] = self.post(path, data=body, token=used)
            return result
        except TokenError:
            log.info("token_refresh path=%s", path)
            self._memo = None  # read the shared cache again: another process may have a new one
            # Drop the token only if it is still the one we used: another process may
            # already have put a fresh one in the shared cache.
            if self.cache.access_token.get() == used:
                self.cache.access_token.delete()
        result = self.post(path, data=body)
        return result

    # -- the calls the receiver uses -------------------------------------------------------
    def async_send(
        self,
        userid_list: Sequence[str],
        msg: dict[str, Any],
        dept_id_list: Sequence[int] = (),
    ) -> list[SendResult]:
        """Send one work notification, in calls of at most 100 userids; return the task ids."""
        userids = list(dict.fromkeys(userid_list))
        chunks = [
            userids[i : i + MAX_USERIDS_PER_CALL]
            for i in range(0, len(userids), MAX_USERIDS_PER_CALL)
        ]
        if not chunks:
            chunks = [[]]
        results = []
        for i, chunk in enumerate(chunks):
            body: dict[str, Any] = {"agent_id": self.agent_id, "msg": msg, "to_all_user": "false"}
            if chunk:
                body["userid_list"] = ",".join(chunk)
            if dept_id_list and i == 0:
                body["dept_id_list"] = ",".join(str(d) for d in dept_id_list)
            if "userid_list" not in body and "dept_id_list" not in body:
                raise PermanentError("a work notification needs at least one userid or department")
            reply = self.call(ASYNCSEND_PATH, body)
            try:
                task_id = int(reply["task_id"])
            except (KeyError, TypeError, ValueError):
                raise unexpected_reply(ASYNCSEND_PATH, "no task_id") from None
            results.append(SendResult(task_id, str(reply.get("request_id", "")), tuple(chunk)))
        return results

    def get_send_result(self, task_id: int) -> dict[str, Any]:
        reply = self.call(GETSENDRESULT_PATH, {"agent_id": self.agent_id, "task_id": task_id})
        result: dict[str, Any] = reply.get("send_result") or {}
        return result

    def update_status_bar(self, task_id: int, value: str, bg: str) -> None:
        """Flip an OA message's status bar (已认领 · 张三, 已恢复); errors as for any call."""
        body = {"agent_id": self.agent_id, "task_id": task_id, "status_value": value,
                "status_bg": bg}  # fmt: skip
        self.call(STATUS_BAR_PATH, body)
