"""The console's access rules and pages through the Flask test client (fast; the browser
tests in test_console_browser.py drive the same pages in chromium)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from receiver.messages.links import notification_url
from receiver.settings import Settings
from receiver.web.app import create_app
from receiver.web.console.data import calendar
from receiver.web.console.md import msg_html, to_html
from receiver.web.console.session import LoginLimiter
from tests.conftest import FIXTURES, plan_pending

TOKEN = "the-console-token"
MSG = {"msgtype": "markdown", "markdown": {"title": "t", "text": "### Disk <b>full</b>"}}


@pytest.fixture
def on(settings: Settings) -> Settings:
    return settings.with_(console_token=TOKEN, secret_key="secret")


def nonce(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


def login(client: FlaskClient, token: str = TOKEN) -> Any:
    page = client.get("/console/login")
    return client.post("/console/login", data={"token": token, "csrf": nonce(page.text)})


@pytest.fixture
def app(on: Settings) -> Flask:
    return create_app(on)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    c = app.test_client()
    assert login(c).status_code == 303
    return c


def csrf(client: FlaskClient) -> str:
    return nonce(client.get("/console/").text)


def test_the_console_is_off_without_its_token(settings: Settings) -> None:
    c = create_app(settings).test_client()
    assert c.get("/console/").status_code == 404
    assert c.get("/console/login").status_code == 404
    assert c.get("/n/anything").status_code == 404  # no RECEIVER_EXTERNAL_URL either


def test_the_token_needs_the_secret_key() -> None:
    with pytest.raises(ValueError, match="RECEIVER_SECRET_KEY is required"):
        Settings.from_env({"RECEIVER_CONSOLE_TOKEN": "t"})
    assert Settings.from_env({"RECEIVER_CONSOLE_TOKEN": "t", "RECEIVER_SECRET_KEY": "k"})
    shown = repr(Settings(console_token="tok-SECRET-1", secret_key="key-SECRET-2"))
    assert "SECRET" not in shown


def test_login_sets_a_signed_httponly_strict_cookie(app: Flask) -> None:
    c = app.test_client()
    assert c.get("/console/").headers["Location"].startswith("/console/login")
    reply = login(c)
    assert reply.status_code == 303 and reply.headers["Location"] == "/console/"
    cookie = next(h for h in reply.headers.getlist("Set-Cookie") if "console_session=" in h)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert TOKEN not in cookie
    assert c.get("/console/").status_code == 200


def test_a_wrong_token_gets_one_answer_however_wrong(app: Flask) -> None:
    answers = set()
    for wrong in ("", "x", TOKEN[:-1], TOKEN + "x", "y" * 10_000, "ünïcødé"):
        c = app.test_client()
        reply = login(c, wrong)
        assert reply.status_code == 401
        assert not any("console_session=" in h for h in reply.headers.getlist("Set-Cookie"))
        answers.add(reply.text.replace(nonce(reply.text), "NONCE"))
    assert len(answers) == 1


def test_login_itself_needs_its_form(app: Flask) -> None:
    c = app.test_client()
    assert c.post("/console/login", data={"token": TOKEN, "csrf": "made-up"}).status_code == 403
    page = c.get("/console/login")  # and a redirect after it stays on this site
    reply = c.post("/console/login", data={"token": TOKEN, "csrf": nonce(page.text),
                                           "next": "//evil.example/console/"})  # fmt: skip
    assert reply.headers["Location"] == "/console/"


def test_a_session_ends_with_logout_a_new_token_or_a_forged_cookie(
    on: Settings, client: FlaskClient
) -> None:
    cookie = client.get_cookie("console_session", path="/console/")
    assert cookie is not None
    other = create_app(on.with_(console_token="a-new-token")).test_client()
    other.set_cookie("console_session", cookie.value, path="/console/")
    assert other.get("/console/").status_code == 302
    other.set_cookie("console_session", cookie.value[:-2] + "xx", path="/console/")
    assert other.get("/console/").status_code == 302
    assert client.post("/console/logout", data={"csrf": csrf(client)}).status_code == 303
    assert client.get("/console/").status_code == 302


def test_every_post_needs_the_csrf_token(client: FlaskClient, on: Settings) -> None:
    box = Outbox(on.data_dir)
    (i,) = box.enqueue([Entry("ops", MSG, ("u1",))], source="alertmanager", group_key="g")
    box.claim()
    box.mark_dead(i, error="boom", errcode=40035)
    for path in ("/console/logout", f"/console/notifications/{i}/retry",
                 f"/console/notifications/{i}/drop", "/console/preview"):  # fmt: skip
        assert client.post(path).status_code == 403, path
        assert client.post(path, data={"csrf": "wrong"}).status_code == 403, path
    assert box.get(i).state == "dead"  # type: ignore[union-attr]
    reply = client.post(f"/console/notifications/{i}/retry", data={"csrf": csrf(client)})
    assert reply.status_code == 303 and box.get(i).state == "queued"  # type: ignore[union-attr]


def test_pages_are_guarded_and_load_nothing_from_elsewhere(client: FlaskClient) -> None:
    for path in ("/console/", "/console/notifications", "/console/routes/test",
                 "/console/preview", "/console/oncall", "/console/routing"):  # fmt: skip
        reply = client.get(path)
        assert reply.status_code == 200, path
        assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert '<meta name="viewport"' in reply.text
        assert not re.search(r'(src|href)="(https?:)?//', reply.text), path


def test_notifications_filter_newest_first(client: FlaskClient, on: Settings) -> None:
    box = Outbox(on.data_dir)
    a, b, c = (
        box.enqueue([Entry(r, MSG, u)], source="alertmanager", group_key="g")[0]
        for r, u in (("ops", ("alice",)), ("db,ops", ("bob", "carol")), ("db", ("carol",)))
    )
    box.claim()
    box.mark_dead(c, error="DingTalk errcode 40035", errcode=40035)
    box.mark_sent(a, [1])
    box.mark_retry(b, delay_s=60, error="HTTP 500", errcode=None)

    def ids(query: str) -> list[str]:
        html = client.get("/console/notifications" + query).text
        return re.findall(r'/console/notifications/(\d+)"', html)

    assert ids("") == [str(c), str(b), str(a)]
    assert ids("?state=dead") == [str(c)]
    assert ids("?receiver=db") == [str(c), str(b)]  # "db,ops" is db's too
    assert ids("?person=carol") == [str(c), str(b)]
    assert ids("?person=car") == []  # a userid is matched whole
    assert ids("?state=sent&receiver=ops") == [str(a)]
    overview = client.get("/console/").text
    assert "DingTalk errcode 40035" in overview and "HTTP 500" in overview  # the last errors


def test_a_held_message_can_be_dropped(client: FlaskClient, on: Settings) -> None:
    box = Outbox(on.data_dir)
    (i,) = box.enqueue([Entry("ops", MSG, ("u1",))], source="alertmanager", group_key="g")
    box.claim()
    box.hold(i, until=time.time() + 3600, reason="over the per-user daily limit")
    page = client.get(f"/console/notifications/{i}").text
    assert "held" in page and "over the per-user daily limit" in page and 'id="drop"' in page
    reply = client.post(f"/console/notifications/{i}/drop", data={"csrf": csrf(client)})
    assert reply.status_code == 303 and box.get(i) is None


def test_a_pending_webhook_is_shown_and_can_be_replanned_or_dropped(
    client: FlaskClient, on: Settings
) -> None:
    box = Outbox(on.data_dir)
    p = box.accept(b'{"x": "<script>"}', source="alertmanager", receiver="gone", group_key="g")
    box.defer(p.id, error="LookupError: receiver 'gone'", delay_s=600)
    page = client.get(f"/console/notifications/p{p.id}").text
    assert "receiver &#39;gone&#39;" in page and "&lt;script&gt;" in page
    client.post(f"/console/notifications/p{p.id}/retry", data={"csrf": csrf(client)})
    assert box.due_pending() != []  # due again now
    client.post(f"/console/notifications/p{p.id}/drop", data={"csrf": csrf(client)})
    assert box.pending() == []
    assert client.get(f"/console/notifications/p{p.id}").status_code == 404
    assert client.get("/console/notifications/x1").status_code == 404
    missing = client.get("/console/notifications/999")
    assert missing.status_code == 404 and "No such message" in missing.text  # a page, not JSON


def test_markdown_is_shown_as_dingtalk_shows_it_and_nothing_more() -> None:
    html = str(to_html("### T\n**b** *i* [ok](https://x.example/?a=1&b=2) [no](javascript:x)\n"
                       "- one\n- two\n<img src=x onerror=alert(1)> \\*not\\*"))  # fmt: skip
    assert "<h3>T</h3>" in html and "<strong>b</strong>" in html and "<em>i</em>" in html
    assert '<a href="https://x.example/?a=1&amp;b=2"' in html
    assert "javascript" not in html.split("no")[0] and ">no<" not in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert "*not*" in html  # an escaped marker stays a character
    text = msg_html({"msgtype": "text", "text": {"content": "<b>x</b>"}})
    assert "&lt;b&gt;x&lt;/b&gt;" in str(text)


def test_the_calendar_marks_overrides(tmp_path: Path) -> None:
    from receiver.routing import load_routing

    path = tmp_path / "routing.yaml"
    path.write_text(
        "users: {a: u1, b: u2, c: u3}\n"
        "schedules:\n  s:\n    timezone: UTC\n    rotation: daily\n    handoff: '08:00'\n"
        "    start: 2026-01-01\n    members: [a, b]\n"
        "    overrides: [{user: c, from: '2026-03-02T12:00', to: '2026-03-03T00:00'}]\n"
        "receivers: [{name: r, schedules: [s]}]\nroute: {receiver: r}\n"
    )
    days = calendar(load_routing(str(path)), "s", datetime(2026, 3, 1, 9, tzinfo=UTC))
    assert len(days) == 14 and days[0].date == "2026-03-01 Sun"
    assert days[1].shifts == [
        ("00:00", "08:00", "b", False), ("08:00", "12:00", "a", False),
        ("12:00", "24:00", "c", True),
    ]  # fmt: skip


def test_the_routing_page_shows_a_refused_file_and_a_changed_one(
    client: FlaskClient, app: Flask, on: Settings, tmp_path: Path
) -> None:
    assert "The file on disk is the running table." in client.get("/console/routing").text
    body = (FIXTURES / "alertmanager/firing-1.json").read_bytes()  # team=db, to bob
    assert client.post("/alertmanager", data=body, content_type="application/json").status_code
    plan_pending(app)
    state = app.extensions["receiver"]
    routing = tmp_path / "routing.yaml"
    routing.write_text(Path(on.routing).read_text())
    state.settings = on.with_(routing=str(routing))
    routing.write_text(routing.read_text().replace("users: [bob]", "users: [alice]"))
    page = client.get("/console/routing").text
    # db no longer pages bob, for an alert received a moment ago as for the samples
    assert "alerts would reach other receivers or people" in page and "user0002" in page
    assert re.search(r"received \d+[smh]( \d+m)? ago", page) and "alertname=HighLatency" in page
    routing.write_text("route: {receiver: nobody}\n")
    with pytest.raises(Exception):  # noqa: B017 - ConfigError, as /-/reload answers it
        state.reload("test")
    page = client.get("/console/routing").text
    assert "The last reload was refused" in page and "nobody" in page
    assert "Last reload refused" in client.get("/console/").text


def test_the_full_notification_page(settings: Settings) -> None:
    on = settings.with_(external_url="https://receiver.example.com", secret_key="k")
    app = create_app(on)
    body = (FIXTURES / "alertmanager/many-55.json").read_bytes()
    c = app.test_client()
    assert c.post("/alertmanager", data=body, content_type="application/json").status_code == 200
    plan_pending(app)
    (item,) = Outbox(on.data_dir).items()
    link = re.search(r"https://receiver\.example\.com(/n/[^)\s]+)", item.msg["markdown"]["text"])
    assert link
    page = c.get(link.group(1))
    assert page.status_code == 200 and page.text.count('class="card alert"') == 55
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert c.get("/console/").status_code == 404  # the console is still off
    expired = notification_url(on.external_url, "k", item.notification_id or 0, time.time() - 1)
    assert c.get(expired.removeprefix(on.external_url or "")).status_code == 403
    forged = notification_url(on.external_url, "other", item.notification_id or 0, 9e9)
    assert c.get(forged.removeprefix(on.external_url or "")).status_code == 403
    gone = notification_url(on.external_url, "k", 999, 9e9)
    assert c.get(gone.removeprefix(on.external_url or "")).status_code == 404


def test_the_preview_shows_a_group_robots_copy_against_its_own_budget(
    on: Settings, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "robots:\n  db-team:\n    webhook: https://oapi.dingtalk.com/robot/send?access_token=t\n"
        "receivers:\n  - {name: ops, users: [manager4220], robots: [db-team]}\n"
        "route: {receiver: ops}\n"
    )
    c = create_app(on.with_(routing=str(routing))).test_client()
    assert login(c).status_code == 303
    reply = c.post("/console/preview", data={"csrf": csrf(c), "sample": "alertmanager-firing-4"})
    assert reply.status_code == 200
    assert "To: manager4220" in reply.text and "of 2048 bytes" in reply.text
    assert "A copy to the group robot db-team" in reply.text and "of 20000 bytes" in reply.text


def test_the_overview_says_why_sending_is_paused(client: FlaskClient, on: Settings) -> None:
    box = Outbox(on.data_dir)
    (i,) = box.enqueue([Entry("ops", MSG, ("u1",))], source="alertmanager", group_key="g")
    assert 'id="sending"' in client.get("/console/").text
    assert "Running (not paused)" in client.get("/console/").text
    box.pause(reason="outage", error="HTTP 503 from oapi.dingtalk.com", probe_in=5, item_id=i)
    page = client.get("/console/").text
    assert "Paused: outage since" in page and "HTTP 503 from oapi.dingtalk.com" in page
    box.resume()
    assert "Running (not paused)" in client.get("/console/").text


def test_a_message_shows_each_persons_read_and_acknowledged_times(
    client: FlaskClient, on: Settings, tmp_path: Path
) -> None:
    from receiver.delivery.planner import Planner
    from tests.cli.test_escalation import FIRING, ROUTING

    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    s = on.with_(routing=str(routing))
    app = create_app(s)
    c = app.test_client()
    assert login(c).status_code == 303
    assert c.post("/alertmanager", json=FIRING).status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    box = Outbox(s.data_dir)
    (item,) = box.items()
    box.claim()
    box.mark_sent(item.id, [1001])
    read_at = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
    box.record_reads(item.id, ["u-bob"], read_at)
    (esc,) = box.escalations()
    box.record_ack(esc.notification_id, "u-bob", via="test", at=read_at + 60)
    page = c.get(f"/console/notifications/{item.id}").text
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>(u-\w+)</td>.*?</tr>", page)}
    assert "2030-05-06T07:08:09" in rows["u-bob"] and "2030-05-06T07:09:09" in rows["u-bob"]
    assert "2030-05-06" not in rows["u-carol"]


def test_wrong_tokens_from_one_address_are_limited(app: Flask) -> None:
    guesser = app.test_client()
    for i in range(10):
        assert login(guesser, f"guess-{i}").status_code == 401
    reply = login(guesser)  # even the right token, until the window moves on
    print(f"\nthe 11th try: {reply.status_code} Retry-After {reply.headers.get('Retry-After')}")
    assert reply.status_code == 429
    assert 0 < int(reply.headers["Retry-After"]) <= 301
    assert "Too many wrong tokens" in reply.text
    assert not any("console_session=" in h for h in reply.headers.getlist("Set-Cookie"))
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert login(other).status_code == 303  # another address is not locked out


def test_the_login_limit_slides_with_the_clock() -> None:
    now = [1000.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    for _ in range(10):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
        now[0] += 10
    assert limiter.retry_after("a") == pytest.approx(300 - 100)
    assert limiter.retry_after("b") == 0
    now[0] += 200  # the first failure leaves the window: one more try
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(10)
