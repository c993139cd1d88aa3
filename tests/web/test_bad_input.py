"""Bad input over HTTP: every case is a 4xx with JSON {"error": ...}; never a 5xx or a hang.

Runs against receiver.app.create_app(settings) through the Flask test client.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.ingest.auth import grafana_signature
from receiver.settings import Settings
from receiver.web.app import create_app

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
AM = (FIXTURES / "alertmanager" / "firing-4.json").read_bytes()
GRAFANA = (FIXTURES / "grafana" / "unified-firing.json").read_bytes()
LEGACY = (FIXTURES / "grafana" / "legacy-alerting.json").read_bytes()
JSON_CT = {"Content-Type": "application/json"}
TOKEN = "tok-123"
BASIC = "user:pa:ss"
SECRET = "hmac-s3cret"


def make_client(tmp_path: Path, **overrides: Any) -> Any:
    settings = Settings(
        data_dir=str(tmp_path),
        routing=str(REPO / "routing.yaml"),
        templates=str(REPO / "templates"),
        **overrides,
    )
    return create_app(settings).test_client()


@pytest.fixture
def client(tmp_path: Path) -> Any:
    return make_client(tmp_path)


def mutate(body: bytes, **changes: Any) -> bytes:
    doc = json.loads(body)
    doc.update(changes)
    return json.dumps(doc).encode()


def mutate_alert(body: bytes, index: int, **changes: Any) -> bytes:
    doc = json.loads(body)
    doc["alerts"][index].update(changes)
    return json.dumps(doc).encode()


# Deep enough for the delivery process's deeper call stack to refuse what a web worker took.
DEEP = mutate(AM)[:-1] + b',"x":' + b"[" * 600 + b"]" * 600 + b"}"

# (case, endpoint, body, path expected in the error or "")
BAD_PAYLOADS: list[tuple[str, str, bytes, str]] = [
    ("empty body", "/alertmanager", b"", ""),
    ("truncated json", "/alertmanager", AM[: len(AM) // 2], ""),
    ("invalid utf-8", "/alertmanager", AM.replace(b"DiskFull", b"Disk\xffFull", 1), ""),
    ("json array", "/alertmanager", b"[" + AM + b"]", "$"),
    ("json string", "/grafana", b'"hello"', "$"),
    ("NaN", "/alertmanager", mutate(AM)[:-1] + b',"x":NaN}', ""),
    ("huge number", "/alertmanager", mutate(AM)[:-1] + b',"x":' + b"9" * 5000 + b"}", ""),
    ("absurd nesting", "/alertmanager", b"[" * 200_000 + b"]" * 200_000, ""),
    ("absurd nesting grafana", "/grafana", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, ""),
    ("deep nesting", "/alertmanager", DEEP, ""),
    ("lone surrogate", "/alertmanager", AM.replace(b'"ops', b'"\\udc00ops', 1), "$.receiver"),
    ("missing alerts", "/alertmanager", mutate(AM, alerts=None), "$"),
    ("alerts object", "/alertmanager", mutate(AM, alerts={}), "$.alerts"),
    ("alert is a number", "/alertmanager", mutate(AM, alerts=[1]), "$.alerts[0]"),
    ("unknown version", "/alertmanager", mutate(AM, version="5"), "$.version"),
    ("grafana body on AM", "/alertmanager", GRAFANA, "post it to /grafana"),
    ("unknown grafana version", "/grafana", mutate(GRAFANA, version="2"), "$.version"),
    ("bad status", "/alertmanager", mutate(AM, status="broken"), "$.status"),
    (
        "label value int",
        "/alertmanager",
        mutate_alert(AM, 1, labels={"a": 1}),
        "$.alerts[1].labels.a",
    ),  # noqa: E501
    (
        "label value null",
        "/grafana",
        mutate_alert(GRAFANA, 0, labels={"a": None}),
        "$.alerts[0].labels.a",
    ),  # noqa: E501
    (
        "startsAt junk",
        "/alertmanager",
        mutate_alert(AM, 0, startsAt="soon"),
        "$.alerts[0].startsAt",
    ),  # noqa: E501
    (
        "startsAt year 9999",
        "/alertmanager",
        mutate_alert(AM, 0, startsAt="9999-12-31T20:00:00Z"),
        "$.alerts[0].startsAt",
    ),
    (
        "endsAt year 9999 grafana",
        "/grafana",
        mutate_alert(GRAFANA, 0, endsAt="9999-12-31T23:59:59Z"),
        "$.alerts[0].endsAt",
    ),
    (
        "truncatedAlerts bool",
        "/alertmanager",
        mutate(AM, truncatedAlerts=True),
        "$.truncatedAlerts",
    ),  # noqa: E501
    ("orgId string", "/grafana", mutate(GRAFANA, orgId="1"), "$.orgId"),
    (
        "values string",
        "/grafana",
        mutate_alert(GRAFANA, 1, values={"B": "x"}),
        "$.alerts[1].values.B",
    ),  # noqa: E501
    ("neither grafana format", "/grafana", b'{"hello":"world"}', "$"),
    ("legacy unknown state", "/grafana", mutate(LEGACY, state="exploded"), "$.state"),
    ("legacy tags int", "/grafana", mutate(LEGACY, tags={"a": 1}), "$.tags.a"),
    ("duplicate key", "/alertmanager", AM[:-2] + b',"status":"resolved"}', ""),
]


@pytest.mark.parametrize(
    ("case", "endpoint", "body", "path"), BAD_PAYLOADS, ids=[c[0] for c in BAD_PAYLOADS]
)
def test_bad_payload_is_400_with_path(
    client: Any, case: str, endpoint: str, body: bytes, path: str
):
    started = time.perf_counter()
    r = client.post(endpoint, data=body, headers=JSON_CT)
    assert time.perf_counter() - started < 5
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    error = r.get_json()["error"]
    assert isinstance(error, str) and error
    if path:
        assert path in error


@pytest.mark.parametrize("endpoint", ["/alertmanager", "/grafana", "/grafana/ops"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_non_json_content_type_is_415(client: Any, endpoint: str, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    body = GRAFANA if endpoint.startswith("/grafana") else AM
    r = client.post(endpoint, data=body, headers=headers)
    assert r.status_code == 415
    assert "error" in r.get_json()


def test_json_with_charset_is_accepted(client: Any):
    r = client.post(
        "/alertmanager", data=AM, headers={"Content-Type": "application/json; charset=utf-8"}
    )  # noqa: E501
    assert 200 <= r.status_code < 300


class CountingStream:
    """A seekable fake body of `total` bytes that records how much the server read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pos = 0
        self.read_bytes = 0

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.total - self.pos
        n = min(n, self.total - self.pos, 1 << 16)
        self.pos += n
        self.read_bytes += n
        return b" " * n

    def readline(self, n: int | None = -1) -> bytes:
        return self.read(n)

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = self.total + offset if whence == 2 else offset
        return self.pos


def test_oversized_body_is_413_before_it_is_read(tmp_path: Path):
    c = make_client(tmp_path, max_body_bytes=1024)
    stream = CountingStream(50 * 1024 * 1024)
    r = c.post("/alertmanager", input_stream=stream, headers=JSON_CT)
    assert r.status_code == 413
    assert "error" in r.get_json()
    assert stream.read_bytes <= 1024 + 65536  # the body was not read whole


def test_body_at_the_limit_is_read(tmp_path: Path):
    c = make_client(tmp_path, max_body_bytes=len(AM))
    assert 200 <= c.post("/alertmanager", data=AM, headers=JSON_CT).status_code < 300
    c2 = make_client(tmp_path, max_body_bytes=len(AM) - 1)
    assert c2.post("/alertmanager", data=AM, headers=JSON_CT).status_code == 413


def _ten_thousand() -> bytes:
    doc = json.loads((FIXTURES / "alertmanager" / "many-55.json").read_bytes())
    one = doc["alerts"][0]
    doc["alerts"] = [
        {**one, "labels": {**one["labels"], "instance": f"n{i}"}} for i in range(10_000)
    ]
    return json.dumps(doc).encode()


def test_ten_thousand_alerts_fit_the_default_limit(client: Any):
    # Issue #22: Alertmanager never retries a 413, so the biggest outage never paged.
    body = _ten_thousand()
    assert len(body) <= Settings().max_body_bytes
    assert client.post("/alertmanager", data=body, headers=JSON_CT).status_code == 200


def test_ten_thousand_alerts_within_a_raised_limit_are_accepted(tmp_path: Path):
    # Decision: alerts are never dropped at ingest; the body limit bounds the work, and
    # render lists what fits the message budget and says how many more there are.
    c = make_client(tmp_path, max_body_bytes=16 * 1024 * 1024)
    started = time.perf_counter()
    r = c.post("/alertmanager", data=_ten_thousand(), headers=JSON_CT)
    assert 200 <= r.status_code < 300, r.get_data(as_text=True)[:300]
    assert time.perf_counter() - started < 20


# --- authentication ------------------------------------------------------------------


def bearer(t: str) -> dict[str, str]:
    return {**JSON_CT, "Authorization": f"Bearer {t}"}


def basic(userpass: str) -> dict[str, str]:
    return {**JSON_CT, "Authorization": "Basic " + base64.b64encode(userpass.encode()).decode()}


def signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    headers = {**JSON_CT}
    stamp = None if ts is None else str(ts)
    headers["X-Grafana-Alerting-Signature"] = grafana_signature(secret, body, stamp)
    if stamp is not None:
        headers["X-Grafana-Alerting-Timestamp"] = stamp
    return headers


AUTH_CASES: list[tuple[str, dict[str, Any], str, bytes, dict[str, str], int]] = [
    ("token missing", {"webhook_token": TOKEN}, "/alertmanager", AM, JSON_CT, 401),
    ("token wrong", {"webhook_token": TOKEN}, "/alertmanager", AM, bearer("nope"), 401),
    ("token right", {"webhook_token": TOKEN}, "/alertmanager", AM, bearer(TOKEN), 200),
    ("token on grafana", {"webhook_token": TOKEN}, "/grafana/ops", GRAFANA, bearer(TOKEN), 200),
    ("basic wrong", {"basic_auth": BASIC}, "/alertmanager", AM, basic("user:pa"), 401),
    ("basic right", {"basic_auth": BASIC}, "/grafana", GRAFANA, basic(BASIC), 200),
    (
        "either of two",
        {"webhook_token": TOKEN, "basic_auth": BASIC},
        "/alertmanager",
        AM,
        basic(BASIC),
        200,
    ),
    ("bad body, no auth", {"webhook_token": TOKEN}, "/alertmanager", b"[", JSON_CT, 401),
    # Token and basic auth go before the body is read: a stranger gets 401, not 413 or 415.
    (
        "too big, no auth",
        {"webhook_token": TOKEN, "max_body_bytes": 64},
        "/alertmanager",
        AM,
        JSON_CT,
        401,
    ),
    (
        "not JSON, no auth",
        {"basic_auth": BASIC},
        "/grafana",
        GRAFANA,
        {"Content-Type": "text/plain"},
        401,
    ),
    (
        "too big, token right",
        {"webhook_token": TOKEN, "max_body_bytes": 64},
        "/alertmanager",
        AM,
        bearer(TOKEN),
        413,
    ),
    ("hmac missing", {"grafana_hmac_secret": SECRET}, "/grafana", GRAFANA, JSON_CT, 401),
    (
        "hmac wrong secret",
        {"grafana_hmac_secret": SECRET},
        "/grafana",
        GRAFANA,
        signed(GRAFANA, "other"),
        401,
    ),
    ("hmac other body", {"grafana_hmac_secret": SECRET}, "/grafana", LEGACY, signed(GRAFANA), 401),
    ("hmac right", {"grafana_hmac_secret": SECRET}, "/grafana", GRAFANA, signed(GRAFANA), 200),
    (
        "hmac + ts right",
        {"grafana_hmac_secret": SECRET},
        "/grafana",
        GRAFANA,
        lambda: signed(GRAFANA, ts=int(time.time())),  # signed when the test runs,
        200,
    ),
    (
        "hmac replayed",
        {"grafana_hmac_secret": SECRET},
        "/grafana",
        GRAFANA,
        lambda: signed(GRAFANA, ts=int(time.time()) - 3600),  # not when it is collected
        401,
    ),
    ("hmac not asked on AM", {"grafana_hmac_secret": SECRET}, "/alertmanager", AM, JSON_CT, 200),
    (
        "hmac and token: sig only",
        {"grafana_hmac_secret": SECRET, "webhook_token": TOKEN},
        "/grafana",
        GRAFANA,
        signed(GRAFANA),
        401,
    ),
    (
        "hmac and token: both",
        {"grafana_hmac_secret": SECRET, "webhook_token": TOKEN},
        "/grafana",
        GRAFANA,
        {**signed(GRAFANA), "Authorization": f"Bearer {TOKEN}"},
        200,
    ),
]


@pytest.mark.parametrize(
    ("case", "overrides", "endpoint", "body", "headers", "status"),
    AUTH_CASES,
    ids=[c[0] for c in AUTH_CASES],
)
def test_auth(
    tmp_path: Path,
    case: str,
    overrides: dict[str, Any],
    endpoint: str,
    body: bytes,
    headers: dict[str, str] | Callable[[], dict[str, str]],
    status: int,
):
    # A timestamped signature is made now: one made at collection is minutes old by the
    # time a full run reaches this test, past the 5-minute replay window.
    headers = headers() if callable(headers) else headers
    r = make_client(tmp_path, **overrides).post(endpoint, data=body, headers=headers)
    if status == 200:
        assert 200 <= r.status_code < 300, r.get_data(as_text=True)[:300]
    else:
        assert r.status_code == status
        assert "error" in r.get_json()


def test_401_does_not_say_which_part_was_wrong(tmp_path: Path):
    c = make_client(tmp_path, webhook_token=TOKEN, grafana_hmac_secret=SECRET)
    replies = [
        c.post("/grafana", data=GRAFANA, headers=h).get_data()
        for h in (
            JSON_CT,
            bearer(TOKEN),  # token right, signature missing
            {**signed(GRAFANA), "Authorization": "Bearer nope"},  # signature right, token wrong
        )
    ]
    assert len(set(replies)) == 1
    assert TOKEN.encode() not in replies[0] and SECRET.encode() not in replies[0]


@pytest.mark.parametrize(
    "fixture", ["unified-firing.json", "legacy-alerting.json", "legacy-ok.json"]
)
@pytest.mark.parametrize("endpoint", ["/alertmanager", "/alertmanager/ops"])
def test_a_grafana_body_on_the_alertmanager_endpoint_says_where_it_goes(
    client: Any, fixture: str, endpoint: str
) -> None:
    body = (FIXTURES / "grafana" / fixture).read_bytes()
    r = client.post(endpoint, data=body, headers=JSON_CT)
    assert r.status_code == 400
    assert r.get_json() == {"error": "$: this looks like a Grafana payload: post it to /grafana"}
