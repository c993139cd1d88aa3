"""Webhook authentication: bearer, basic, Grafana HMAC, and the combined policy."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from receiver.ingest.auth import (
    check_grafana_hmac,
    check_signature,
    check_webhook_auth,
    grafana_signature,
)

TOKEN = "s3cr3t-token"
BASIC = "grafana:pa:ss"  # a colon in the password must survive
BODY = b'{"receiver":"x","status":"firing","alerts":[]}\n'
SECRET = "hmac-secret"
NOW = 1_764_300_000.0


def basic_header(userpass: str) -> str:
    return "Basic " + base64.b64encode(userpass.encode()).decode()


@pytest.mark.parametrize(
    ("headers", "token", "basic", "ok"),
    [
        ({}, None, None, True),  # nothing configured: open
        ({"Authorization": f"Bearer {TOKEN}"}, TOKEN, None, True),
        ({"authorization": f"bearer {TOKEN}"}, TOKEN, None, True),  # case-insensitive
        ({"Authorization": f"Bearer {TOKEN}x"}, TOKEN, None, False),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, TOKEN, None, False),
        ({"Authorization": "Bearer "}, TOKEN, None, False),
        ({}, TOKEN, None, False),
        ({"Authorization": TOKEN}, TOKEN, None, False),  # no scheme
        ({"Authorization": f"Token {TOKEN}"}, TOKEN, None, False),
        ({"Authorization": basic_header(BASIC)}, None, BASIC, True),
        ({"Authorization": basic_header("grafana:pa")}, None, BASIC, False),
        ({"Authorization": basic_header("GRAFANA:pa:ss")}, None, BASIC, False),
        ({"Authorization": "Basic !!!not-base64"}, None, BASIC, False),
        ({"Authorization": basic_header(BASIC)}, TOKEN, None, False),  # basic not configured
        ({"Authorization": f"Bearer {TOKEN}"}, None, BASIC, False),  # bearer not configured
        # both configured: either one passes
        ({"Authorization": f"Bearer {TOKEN}"}, TOKEN, BASIC, True),
        ({"Authorization": basic_header(BASIC)}, TOKEN, BASIC, True),
        ({"Authorization": "Bearer ünïcode"}, TOKEN, BASIC, False),
    ],
)
def test_webhook_auth(headers: dict[str, str], token: str | None, basic: str | None, ok: bool):
    assert check_webhook_auth(headers, token=token, basic=basic) is ok


def test_a_non_ascii_token_as_a_wsgi_server_hands_it_over():
    # WSGI servers (gunicorn) decode header bytes as Latin-1; Alertmanager sends UTF-8.
    sent = "Bearer " + "pässwörd".encode().decode("latin-1")
    assert check_webhook_auth({"Authorization": sent}, token="pässwörd", basic=None)
    assert check_webhook_auth({"Authorization": "Bearer pässwörd"}, token="pässwörd", basic=None)
    assert not check_webhook_auth({"Authorization": sent}, token="passwörd", basic=None)


def test_signature_matches_grafana_algorithm():
    # grafana/alerting http/hmac.go: hex(HMAC-SHA256(secret, [ts + ":"] + body))
    plain = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    stamped = hmac.new(SECRET.encode(), b"1764300000:" + BODY, hashlib.sha256).hexdigest()
    assert grafana_signature(SECRET, BODY) == plain
    assert grafana_signature(SECRET, BODY, "1764300000") == stamped


def hmac_ok(headers: dict[str, str], body: bytes = BODY, **kw: object) -> bool:
    return check_grafana_hmac(headers, body, secret=SECRET, now=NOW, **kw)  # type: ignore[arg-type]


def test_hmac_without_timestamp():
    sig = grafana_signature(SECRET, BODY)
    assert hmac_ok({"X-Grafana-Alerting-Signature": sig})
    assert hmac_ok({"x-grafana-alerting-signature": sig.upper()})  # hex case is not secret
    assert hmac_ok({"X-Grafana-Alert-Signature": sig})  # Grafana's code default name
    assert not hmac_ok({"X-Grafana-Alerting-Signature": sig}, BODY + b" ")
    assert not hmac_ok({"X-Grafana-Alerting-Signature": grafana_signature("other", BODY)})
    assert not hmac_ok({})
    assert not hmac_ok({"X-Grafana-Alerting-Signature": ""})
    assert not hmac_ok({"X-Grafana-Alerting-Signature": sig}, require_timestamp=True)


def test_hmac_custom_header():
    sig = grafana_signature(SECRET, BODY)
    assert hmac_ok({"X-Sig": sig}, header="X-Sig")
    assert not hmac_ok({"X-Other": sig}, header="X-Sig")


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        ("1764300000", True),
        ("1764300299", True),  # 299 s in the future: clock skew within the window
        ("1764299700", True),  # exactly the window
        ("1764299699", False),  # 301 s old: a replay
        ("1764300301", False),
        ("-1764300000", False),
        ("17643e5", False),
        ("", False),
        ("99999999999999999999", False),
    ],
)
def test_hmac_timestamp_window(ts: str, ok: bool):
    headers = {
        "X-Grafana-Alerting-Signature": grafana_signature(SECRET, BODY, ts or None),
        "X-Grafana-Alerting-Timestamp": ts,
    }
    assert hmac_ok(headers) is ok


def test_hmac_timestamp_is_bound_to_the_signature():
    # A captured signed request replayed with a fresh timestamp does not verify.
    old = grafana_signature(SECRET, BODY, "1764290000")
    fresh = {"X-Grafana-Alerting-Signature": old, "X-Grafana-Alerting-Timestamp": "1764300000"}
    assert not hmac_ok(fresh)
    # Dropping the timestamp header does not help either: body-only MAC differs.
    assert not hmac_ok({"X-Grafana-Alerting-Signature": old})


def check_request(headers: dict[str, str], body: bytes, *, grafana: bool, token: str | None,
                  basic: str | None, hmac_secret: str | None, now: float) -> bool:  # fmt: skip
    """The whole policy, as the app applies it: the headers' half, then the body's."""
    return check_webhook_auth(headers, token=token, basic=basic) and check_signature(
        headers, body, grafana=grafana, hmac_secret=hmac_secret, now=now
    )


@pytest.mark.parametrize(
    ("grafana", "headers", "ok"),
    [
        (False, {"Authorization": f"Bearer {TOKEN}"}, True),  # AM: HMAC not asked
        (True, {"Authorization": f"Bearer {TOKEN}"}, False),  # Grafana: signature missing
        (True, {"X-Grafana-Alerting-Signature": "SIG"}, False),  # signed, no token
        (True, {"Authorization": f"Bearer {TOKEN}", "X-Grafana-Alerting-Signature": "SIG"}, True),
        (True, {"Authorization": "Bearer nope", "X-Grafana-Alerting-Signature": "SIG"}, False),
    ],
)
def test_policy_token_and_hmac(grafana: bool, headers: dict[str, str], ok: bool):
    headers = {
        k: (grafana_signature(SECRET, BODY) if v == "SIG" else v) for k, v in headers.items()
    }
    got = check_request(
        headers, BODY, grafana=grafana, token=TOKEN, basic=None, hmac_secret=SECRET, now=NOW
    )
    assert got is ok


def test_policy_hmac_only():
    sig = {"X-Grafana-Alerting-Signature": grafana_signature(SECRET, BODY)}
    kw = {"token": None, "basic": None, "hmac_secret": SECRET, "now": NOW}
    assert check_request(sig, BODY, grafana=True, **kw)  # type: ignore[arg-type]
    assert not check_request({}, BODY, grafana=True, **kw)  # type: ignore[arg-type]
    assert check_request({}, BODY, grafana=False, **kw)  # type: ignore[arg-type]


def test_policy_open_when_nothing_configured():
    assert check_request({}, BODY, grafana=True, token=None, basic=None, hmac_secret=None, now=NOW)
