"""A fake DingTalk OpenAPI: a real HTTP server on a loopback port.

It speaks gettoken, asyncsend_v2, getsendresult, getsendprogress, status_bar/update
(of a task it sent; `status_bars` keeps each task's last one), department listsub and
user list; records every request; and can be scripted to fail:

    fake.fail("asyncsend_v2", times=3, status=500)
    fake.fail("asyncsend_v2", times=1, body={"errcode": 90002, "errmsg": "throttled"})
    fake.fail("list", times=1, after=3)   # the 4th user/list call fails, not the 1st
    fake.invalidate_tokens()       # every issued token becomes bad (errcode 88/40014)
    fake.delay = 30                # every call hangs this long first
    fake.fail_for("asyncsend_v2", seconds=3, status=500)   # an outage of 3 s from now
    fake.fail_for("asyncsend_v2", seconds=5, start=3, body={"errcode": 90002})  # 3 s on, for 5 s
    fake.fail("asyncsend_v2", times=10**9, match="POISON")  # only calls whose body holds it
    fake.recover()                 # drop every scripted failure
    fake.drop_connections()        # close kept-alive connections, as a server does when idle
    fake.hang_ups = 1              # the next call's connection is closed without a reply
    fake.delivered()               # the asyncsend_v2 calls that DingTalk accepted
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import drop_connections, send_reply, serve, stop

APP_KEY = "fake-app-key"
APP_SECRET = "fake-app-secret-s3cr3t"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    raw: bytes
    headers: dict[str, str]
    status: int = 0  # what the fake answered
    reply: Any = None
    received_at: float = field(default_factory=time.time)  # wall clock, for bench/ latencies
    peer: tuple[str, int] = ("", 0)  # the client's address: one per kept-alive connection

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Failure:
    name: str
    times: int
    status: int = 200
    body: Any = None
    after: int = 0  # let this many matching calls through first
    until: float | None = None  # time.monotonic() deadline, instead of a count
    start: float = 0.0  # time.monotonic() from when a timed failure applies
    match: str | None = None  # only calls whose body (as text) holds this


@dataclass
class Directory:
    departments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {name, parent_id}
    members: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # dept -> users


class FakeDingTalk:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self.delay = 0.0
        self.hang_ups = 0  # this many calls get no reply: their connection is closed
        self.expires_in = 7200
        self.directory = Directory()
        self.send_results: dict[int, dict[str, Any]] = {}
        self.status_bars: dict[int, tuple[str, str]] = {}  # task_id -> (status_value, bg)
        self._tokens: set[str] = set()
        self._token_seq = 0
        self._task_seq = 1000
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeDingTalk:
        self._server = serve(self._handle)
        return self

    def stop(self) -> None:
        stop(self._server)

    def drop_connections(self) -> None:
        """Close the clients' kept connections, as DingTalk does with idle ones."""
        drop_connections(self._server)

    @property
    def url(self) -> str:
        assert self._server
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    # -- scripting ------------------------------------------------------------------------
    def fail(
        self,
        name: str,
        times: int = 1,
        status: int = 200,
        body: Any = None,
        after: int = 0,
        match: str | None = None,
    ) -> None:
        with self._lock:
            self.failures.append(Failure(name, times, status, body, after, match=match))

    def fail_for(
        self,
        name: str,
        seconds: float,
        status: int = 200,
        body: Any = None,
        *,
        start: float = 0.0,
        match: str | None = None,
    ) -> None:
        """Fail every matching call from `start` seconds from now, for `seconds`."""
        with self._lock:
            begin = time.monotonic() + start
            self.failures.append(
                Failure(name, 1, status, body, until=begin + seconds, start=begin, match=match)
            )

    def recover(self) -> None:
        with self._lock:
            self.failures.clear()

    def delivered(self) -> list[Request]:
        """asyncsend_v2 calls answered with errcode 0."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.name == "asyncsend_v2" and r.status == 200
                and isinstance(r.reply, dict) and r.reply.get("errcode") == 0
            ]  # fmt: skip

    def invalidate_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def sends(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.name == "asyncsend_v2"]

    def wait_for(self, predicate: Callable[[FakeDingTalk], bool], timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
        return True

    # -- serving --------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = Request(
            h.command,
            parts.path,
            {k: v[0] for k, v in parse_qs(parts.query).items()},
            body if isinstance(body, dict) else None,
            raw,
            dict(h.headers.items()),
            peer=h.client_address[:2],
        )
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            hang_up, self.hang_ups = self.hang_ups > 0, max(0, self.hang_ups - 1)
            if hang_up:
                req.status = -1  # recorded, never answered
                self.requests.append(req)
        if hang_up:
            h.close_connection = True
            return
        with self._lock:
            self.requests.append(req)
            status, reply = self._reply(req)
            req.status, req.reply = status, reply
            self._lock.notify_all()
        data = reply if isinstance(reply, bytes) else json.dumps(reply, ensure_ascii=False).encode()
        try:
            send_reply(h, status, "application/json;charset=utf-8", data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test): nothing to tell it

    def _reply(self, req: Request) -> tuple[int, Any]:
        text: str | None = None  # the body as text, for a failure that matches on it
        for f in self.failures:
            if f.match is not None:
                text = req.raw.decode("utf-8", "replace") if text is None else text
                if f.match not in text:
                    continue
            if f.until is not None:
                if f.name == req.name and f.start <= time.monotonic() < f.until:
                    return f.status, f.body if f.body is not None else {"errcode": -1}
                continue
            if f.name == req.name and f.times > 0:
                if f.after > 0:
                    f.after -= 1
                    continue
                f.times -= 1
                return f.status, f.body if f.body is not None else {"errcode": -1, "errmsg": "busy"}
        if req.path == "/gettoken":
            if req.query.get("appkey") != APP_KEY or req.query.get("appsecret") != APP_SECRET:
                return 200, {"errcode": 40089, "errmsg": "invalid appkey or appsecret"}
            self._token_seq += 1
            token = f"tok-{self._token_seq}"
            self._tokens.add(token)
            return 200, {"errcode": 0, "access_token": token, "expires_in": self.expires_in}
        if req.query.get("access_token") not in self._tokens:
            return 200, {"errcode": 88, "sub_code": "40014", "errmsg": "不合法的access_token"}
        body = req.body or {}
        if req.name == "asyncsend_v2":
            return 200, self._asyncsend(req, body)
        if req.name == "getsendresult":
            task = int(body.get("task_id", 0))
            return 200, {"errcode": 0, "send_result": self.send_results.get(task, {})}
        if req.path == "/topapi/message/corpconversation/status_bar/update":
            task = int(body.get("task_id", 0))
            if task <= 1000 or task > self._task_seq or not body.get("status_value"):
                return 200, {"errcode": 400002, "errmsg": "无效的参数 task_id/status_value"}
            self.status_bars[task] = (str(body["status_value"]), str(body.get("status_bg", "")))
            return 200, {"errcode": 0}
        if req.name == "getsendprogress":
            return 200, {"errcode": 0, "progress": {"progress_in_percent": 100, "status": 2}}
        if req.path == "/topapi/v2/department/listsub":
            parent = int(body.get("dept_id", 1))
            subs = [
                {"dept_id": d, "name": v["name"], "parent_id": v["parent_id"]}
                for d, v in sorted(self.directory.departments.items())
                if v["parent_id"] == parent
            ]
            return 200, {"errcode": 0, "result": subs}
        if req.path == "/topapi/v2/user/list":
            users = self.directory.members.get(int(body.get("dept_id", 1)), [])
            cursor, size = int(body.get("cursor", 0)), min(int(body.get("size", 100)), 100)
            page = users[cursor : cursor + size]
            more = cursor + size < len(users)
            result = {"has_more": more, "list": page}
            if more:
                result["next_cursor"] = cursor + size
            return 200, {"errcode": 0, "result": result}
        return 404, {"errcode": 404, "errmsg": f"no such API {req.path}"}

    def _asyncsend(self, req: Request, body: dict[str, Any]) -> dict[str, Any]:
        if req.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return {"errcode": 43004, "errmsg": "无效的HTTP HEADER Content-Type"}
        userids = [u for u in str(body.get("userid_list", "")).split(",") if u]
        if len(userids) > 100:
            return {"errcode": 40035, "errmsg": "userid_list 超过100"}
        if not isinstance(body.get("msg"), dict) or not isinstance(body.get("agent_id"), int):
            return {"errcode": 40035, "errmsg": "缺少参数 msg/agent_id"}
        self._task_seq += 1
        return {"errcode": 0, "task_id": self._task_seq, "request_id": f"req-{self._task_seq}"}
