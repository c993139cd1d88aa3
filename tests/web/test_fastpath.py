"""The webhooks' fast path: every request gets the reply Flask alone would give it.

Each case goes to an app with the fast path and to one without it (the Flask app it
wraps), on data directories of their own; status, headers, body and the counters
they moved must be the same. Besides, every other test of the app goes through the
fast path too (the Flask test client calls `app.wsgi_app`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify
from prometheus_client import REGISTRY
from werkzeug.test import EnvironBuilder

from receiver.delivery.outbox import Outbox
from receiver.errors import OutboxUnavailable
from receiver.ingest.auth import grafana_signature
from receiver.settings import Settings
from receiver.web.app import create_app
from receiver.web.deadline import ReadTimedOut
from receiver.web.fastpath import FastPath, Replay, route
from tests.conftest import FIXTURES

FIRING = (FIXTURES / "alertmanager/firing-1.json").read_bytes()
GRAFANA = (FIXTURES / "grafana/unified-firing.json").read_bytes()
JSON = "application/json"
TOKEN, SECRET = "t0ken", "hmac-s3cret"

SAMPLES = [
    ("dingtalk_receiver_payloads_received_total", ("source", "outcome")),
    ("dingtalk_receiver_alerts_received_total", ("source",)),
    ("dingtalk_receiver_duplicate_payloads_total", ("source",)),
]


def counters() -> dict[tuple[str, tuple[str, ...]], float]:
    """Every webhook counter's value, by name and labels."""
    out: dict[tuple[str, tuple[str, ...]], float] = {}
    for metric in REGISTRY.collect():
        for s in metric.samples:
            for name, keys in SAMPLES:
                if s.name == name:
                    out[(name, tuple(s.labels[k] for k in keys))] = s.value
    return out


def apps(settings: Settings, tmp_path: Path) -> tuple[Flask, Flask]:
    """An app as served (its fast path in front), and one of Flask alone."""
    fast = create_app(settings.with_(data_dir=str(tmp_path / "fast")))
    plain = create_app(settings.with_(data_dir=str(tmp_path / "plain")))
    assert isinstance(fast.wsgi_app, FastPath) and isinstance(plain.wsgi_app, FastPath)
    plain.wsgi_app = plain.wsgi_app.app  # type: ignore[method-assign]
    return fast, plain


def call(app: Flask, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes, Any]:
    """One request through `app`'s WSGI callable: status, headers, body, counters moved."""
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        got.update(status=status, headers=headers)

    before = counters()
    body = b"".join(app(environ, start_response))
    after = counters()
    moved = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    return got["status"], list(got["headers"]), body, moved


def environ(
    method: str = "POST", path: str = "/alertmanager", body: bytes = FIRING,
    content_type: str | None = JSON, headers: dict[str, str] | None = None,
    length: int | None = None, stream: Any = None,
) -> dict[str, Any]:  # fmt: skip
    env = EnvironBuilder(
        path=path, method=method, headers=headers or {}, content_type=content_type,
        input_stream=stream if stream is not None else io.BytesIO(body),
    ).get_environ()  # fmt: skip
    if length is not None:
        env["CONTENT_LENGTH"] = str(length)
    elif stream is None:
        env["CONTENT_LENGTH"] = str(len(body))
    return env


def signed(body: bytes) -> dict[str, str]:
    return {"X-Grafana-Alerting-Signature": grafana_signature(SECRET, body, None)}


CASES: dict[str, tuple[dict[str, Any], Callable[[], dict[str, Any]]]] = {
    "accepted": ({}, lambda: environ()),
    "accepted, a charset": ({}, lambda: environ(content_type="application/json; charset=utf-8")),
    "accepted, +json": ({}, lambda: environ(content_type="application/vnd.x+json")),
    "a receiver in the path": ({}, lambda: environ(path="/alertmanager/ops")),
    "an unknown receiver": ({}, lambda: environ(path="/alertmanager/nobody")),
    "a receiver not ASCII": ({}, lambda: environ(path="/alertmanager/\u00e9quipe")),
    "a trailing slash": ({}, lambda: environ(path="/alertmanager/")),
    "two segments": ({}, lambda: environ(path="/alertmanager/ops/x")),
    "grafana": ({}, lambda: environ(path="/grafana", body=GRAFANA)),
    "grafana by PUT": ({}, lambda: environ("PUT", "/grafana/ops", GRAFANA)),
    "alertmanager by PUT": ({}, lambda: environ("PUT")),
    "GET": ({}, lambda: environ("GET", body=b"")),
    "not JSON": ({}, lambda: environ(content_type="text/plain")),
    "no content type": ({}, lambda: environ(content_type=None)),
    "bad JSON": ({}, lambda: environ(body=b'{"version": "4",')),
    "not Alertmanager's": ({}, lambda: environ(body=GRAFANA)),
    "empty": ({}, lambda: environ(body=b"")),
    "over the limit": ({"max_body_bytes": 100}, lambda: environ()),
    "no Content-Length": ({}, lambda: environ(stream=io.BytesIO(FIRING))),
    "shorter than its Content-Length": ({}, lambda: environ(length=len(FIRING) + 10)),
    "a token, missing": ({"webhook_token": TOKEN}, lambda: environ()),
    "a token, wrong": ({"webhook_token": TOKEN},
                       lambda: environ(headers={"Authorization": "Bearer nope"})),
    "a token, right": ({"webhook_token": TOKEN},
                       lambda: environ(headers={"Authorization": f"Bearer {TOKEN}"})),
    "a signature, right": ({"grafana_hmac_secret": SECRET},
                           lambda: environ(path="/grafana", body=GRAFANA, headers=signed(GRAFANA))),
    "a signature, wrong": ({"grafana_hmac_secret": SECRET},
                           lambda: environ(path="/grafana", body=GRAFANA, headers=signed(b"x"))),
    "a signature, not asked of alertmanager": ({"grafana_hmac_secret": SECRET}, lambda: environ()),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_reply_is_flasks(settings: Settings, tmp_path: Path, case: str) -> None:
    options, make = CASES[case]
    fast, plain = apps(settings.with_(**options), tmp_path)
    for _ in range(2):  # the second: a duplicate of the first, when that was accepted
        got, want = call(fast, make()), call(plain, make())
        assert got == want

    def stored(name: str) -> list[tuple[Any, ...]]:
        rows = Outbox(str(tmp_path / name)).pending()
        return [(p.id, p.source, p.receiver, p.body) for p in rows]

    assert stored("fast") == stored("plain")


def test_the_accepted_case_never_reaches_flask(settings: Settings) -> None:
    app = create_app(settings)
    wrapper = app.wsgi_app
    assert isinstance(wrapper, FastPath)
    reached: list[str] = []

    def flask(environ: dict[str, Any], start_response: Any) -> Any:
        reached.append(environ["PATH_INFO"])
        raise AssertionError("Flask was asked")

    wrapper.app = flask
    status, headers, body, moved = call(app, environ())
    assert status == "200 OK" and json.loads(body) == {"alerts": 1, "id": 1, "status": "accepted"}
    assert headers == [("Content-Type", JSON), ("Content-Length", str(len(body)))]
    assert moved[("dingtalk_receiver_payloads_received_total", ("alertmanager", "accepted"))] == 1
    assert reached == []
    with pytest.raises(AssertionError, match="Flask was asked"):
        call(app, environ(path="/alertmanager/nobody"))
    assert reached == ["/alertmanager/nobody"]


def test_the_duplicate_reply_is_what_jsonify_writes(settings: Settings) -> None:
    app = create_app(settings)
    call(app, environ())
    status, _, body, _ = call(app, environ())
    with app.app_context():
        want = jsonify(status="duplicate", id=1, alerts=1).get_data()
    assert status == "200 OK" and body == want == b'{"alerts":1,"id":1,"status":"duplicate"}\n'


def test_a_failed_commit_is_answered_by_flask_and_counted_once(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, plain = apps(settings, tmp_path)
    for app in (fast, plain):
        committer = app.extensions["receiver.committer"]

        def failing(take: Any) -> Any:
            take()
            raise OutboxUnavailable("outbox: disk I/O error")

        monkeypatch.setattr(committer, "write", failing)
    got, want = call(fast, environ()), call(plain, environ())
    assert got == want
    status, _, body, moved = got
    assert status.startswith("503") and b"retry later" in body
    assert moved == {
        ("dingtalk_receiver_payloads_received_total", ("alertmanager", "unavailable")): 1.0
    }
    assert Outbox(str(tmp_path / "fast")).pending() == []


def test_a_read_that_fails_fails_as_in_flask(settings: Settings, tmp_path: Path) -> None:
    class Stalled:  # as gunicorn's Body: read, no readinto
        def read(self, size: int = -1) -> bytes:
            raise ReadTimedOut("no body within 0.1s")

    def stalled() -> dict[str, Any]:
        env = environ()
        env["wsgi.input"] = Stalled()
        return env

    fast, plain = apps(settings, tmp_path)
    got, want = call(fast, stalled()), call(plain, stalled())
    assert got == want and got[0].startswith("408")


def test_a_replayed_body_reads_as_the_first_read_did() -> None:
    r = Replay(b"abcdef")
    assert (r.read(4), r.read(4), r.read(4), r.read()) == (b"abcd", b"ef", b"", b"")
    failed = Replay(b"ab", ReadTimedOut("late"))
    assert failed.read(0) == b"" and failed.read() == b"ab"
    with pytest.raises(ReadTimedOut, match="late"):
        failed.read(10)


@pytest.mark.parametrize(
    "method, path, want",
    [
        ("POST", "/alertmanager", ("alertmanager", None)),
        ("POST", "/alertmanager/ops", ("alertmanager", "ops")),
        ("PUT", "/grafana/ops", ("grafana", "ops")),
        ("POST", "/grafana", ("grafana", None)),
        ("PUT", "/alertmanager", None),
        ("GET", "/grafana", None),
        ("POST", "/alertmanager/", None),
        ("POST", "/alertmanager/a/b", None),
        ("POST", "//alertmanager", None),
        ("POST", "/alertmanagers", None),
        ("POST", "/alertmanager/\u00e9", None),
        ("POST", "/healthz", None),
        ("POST", "", None),
    ],
)
def test_route(method: str, path: str, want: tuple[str, str | None] | None) -> None:
    found = route({"REQUEST_METHOD": method, "PATH_INFO": path})
    assert (found and (found[0], found[2])) == want


def test_the_fast_path_does_what_the_apps_request_hooks_do(settings: Settings) -> None:
    """It calls the one app-wide hook (the reload poll) itself: a new app-wide hook
    would be skipped by it, and must be added there too."""
    app = create_app(settings)
    assert [f.__name__ for f in app.before_request_funcs.get(None, [])] == ["poll_config"]
    assert not app.after_request_funcs.get(None)
    assert not app.teardown_request_funcs.get(None)
    assert not app.url_value_preprocessors.get(None)
