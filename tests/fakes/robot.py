"""A fake DingTalk group robot API: a real HTTP server on a loopback port.

It checks what the real one checks, as DINGTALK.md describes it: the access_token
(300001), the 加签 signature and its timestamp within an hour, a keyword, and the
rate (more than 20 posts in a minute blocks the robot for 10 minutes: 410100). It
records every post and can be scripted to fail:

    fake = FakeRobot().start()
    url = fake.add("tok-db", secret="SECabc")      # the webhook URL of a new robot
    fake.fail(times=2, status=500)                 # the next 2 posts get HTTP 500
    fake.fail(times=1, body={"errcode": 310000, "errmsg": "keywords not in content"})
    fake.delivered()                               # the posts it accepted
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from tests.fakes.server import serve, stop

PER_MINUTE = 20
BLOCK_S = 600.0


@dataclass
class Post:
    token: str
    query: dict[str, str]
    raw_query: str
    body: dict[str, Any] | None
    size: int
    status: int = 0
    reply: Any = None
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.reply, dict) and self.reply["errcode"] == 0

    @property
    def text(self) -> str:
        body = self.body or {}
        kind = str(body.get("msgtype"))
        inner = body.get(kind) or {}
        return str(inner.get("content") or inner.get("text") or "")


@dataclass
class Robot:
    secret: str | None = None
    keyword: str | None = None
    accepted: list[float] = field(default_factory=list)
    blocked_until: float = 0.0


class FakeRobot:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.robots: dict[str, Robot] = {}
        self.posts: list[Post] = []
        self.failures: list[tuple[int, int, Any]] = []  # [times, status, body]
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeRobot:
        self._server = serve(self._handle)
        return self

    def stop(self) -> None:
        stop(self._server)

    @property
    def base(self) -> str:
        assert self._server
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, token: str, *, secret: str | None = None, keyword: str | None = None) -> str:
        """A new robot; returns its webhook URL."""
        with self._lock:
            self.robots[token] = Robot(secret, keyword)
        return f"{self.base}/robot/send?access_token={token}"

    def fail(self, times: int = 1, status: int = 200, body: Any = None) -> None:
        with self._lock:
            self.failures.append([times, status, body])  # type: ignore[arg-type]

    def delivered(self) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.ok]

    def wait_for(self, predicate: Callable[[FakeRobot], bool], timeout: float = 20) -> bool:
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
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        post = Post(query.get("access_token", ""), query, parts.query,
                    body if isinstance(body, dict) else None, len(raw))  # fmt: skip
        with self._lock:
            self.posts.append(post)
            post.status, post.reply = self._reply(post, h.headers.get("Content-Type", ""))
            self._lock.notify_all()
        data = json.dumps(post.reply, ensure_ascii=False).encode()
        try:
            h.send_response(post.status)
            h.send_header("Content-Type", "application/json;charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _reply(self, post: Post, content_type: str) -> tuple[int, Any]:
        for f in self.failures:
            if f[0] > 0:
                f[0] -= 1
                return f[1], f[2] if f[2] is not None else {"errcode": -1, "errmsg": "busy"}
        robot = self.robots.get(post.token)
        if robot is None:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        if not content_type.startswith("application/json") or post.body is None:
            return 200, {"errcode": 400, "errmsg": "invalid json"}
        if robot.secret is not None and not self._signed(robot.secret, post):
            return 200, {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc]"}
        if robot.keyword is not None and robot.keyword not in json.dumps(
            post.body, ensure_ascii=False
        ):
            return 200, {"errcode": 310000, "errmsg": "keywords not in content"}
        now = self.clock()
        robot.accepted = [t for t in robot.accepted if t > now - 60]
        if now < robot.blocked_until or len(robot.accepted) >= PER_MINUTE:
            robot.blocked_until = max(robot.blocked_until, now + BLOCK_S)
            return 200, {"errcode": 410100, "errmsg": "send too fast, exceed 20 times per minute"}
        if post.size > 20_000:
            return 200, {"errcode": 460101, "errmsg": "message too large"}
        robot.accepted.append(now)
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _signed(self, secret: str, post: Post) -> bool:
        """DingTalk's check, from its published recipe: the raw query's sign, in time."""
        raw = dict(p.split("=", 1) for p in post.raw_query.split("&") if "=" in p)
        try:
            ts = int(raw.get("timestamp", ""))
        except ValueError:
            return False
        if abs(self.clock() * 1000 - ts) > 3600 * 1000:
            return False
        mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
        return raw.get("sign") == quote_plus(base64.b64encode(mac))
