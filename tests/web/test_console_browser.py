"""The console in a real browser, against a real `dingtalk-receiver serve` and the fake DingTalk.

Each page loads with no console error and every field labelled; login, CSRF,
the route tester (against the CLI, for a table of label sets) and retry are
driven as a person would. Screenshots of each page, at phone and desktop width,
go to tests/screenshots/ (browser.SCREENSHOTS).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import requests
from click.testing import CliRunner

from receiver.cli import main
from receiver.delivery.outbox import Outbox
from receiver.settings import Settings
from tests.conftest import ROOT, env_for
from tests.fakes import directory as people
from tests.fakes.dingtalk import APP_KEY, APP_SECRET, FakeDingTalk
from tests.procs import http, serve, wait_for_log
from tests.web.browser import chromium, console_errors, screenshot, unlabelled_fields

pytestmark = pytest.mark.e2e

TOKEN = "console-token-Ω-2026"
EXTERNAL = "https://receiver.example.com/"  # as phones reach it; the test swaps in loopback
SHANGHAI = ZoneInfo("Asia/Shanghai")


def routing_yaml() -> str:
    """A table with a schedule, an override inside the next 14 days and a muted route."""
    today = datetime.now(SHANGHAI).date()
    start, end = today + timedelta(days=2), today + timedelta(days=3)
    return f"""
users:
  alice: manager4220
  bob: user0002
  carol: user0003
schedules:
  primary:
    timezone: Asia/Shanghai
    rotation: daily
    handoff: "10:00"
    start: 2026-01-01
    members: [alice, bob]
    overrides:
      - {{user: carol, from: "{start}T00:00", to: "{end}T00:00"}}
time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
        location: Asia/Shanghai
receivers:
  - name: ops
    users: [alice]
  - name: db
    schedules: [primary]
    departments: [12345]
  - name: db-weekdays
    users: [bob]
  - name: web
    users: [carol, bob]
route:
  receiver: ops
  routes:
    - matchers: ['team="db"', 'severity=~"critical|page"']
      receiver: db
      continue: true
    - matchers: ['team="db"']
      receiver: db-weekdays
      mute_time_intervals: [weekends]
    - matchers: ['team="web"']
      receiver: web
"""


# (labels, at): compared with `routes test --json` on the same file.
ROUTE_CASES = [
    ("alertname=Disk\nteam=db\nseverity=critical", "2026-12-07T12:00:00+08:00"),  # a Monday
    ("alertname=Disk\nteam=db\nseverity=critical", "2026-12-05T12:00:00+08:00"),  # muted: Sat
    ("team=db\nseverity=warning", "2026-12-08T09:00:00+08:00"),
    ("team=web", "2026-12-08T11:00:00+08:00"),
    ("team=other", "2026-12-08T11:00:00+08:00"),
    ('alertname="a=b"\nteam=db\nseverity=page', "2026-12-09T10:30:00+08:00"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """serve, with the console on, its directory synced from the fake, and a dead item."""
    tmp = tmp_path_factory.mktemp("console")
    routing = tmp / "routing.yaml"
    routing.write_text(routing_yaml())
    fake = FakeDingTalk().start()
    fake.directory = people.company()
    settings = Settings(data_dir=str(tmp / "data"), routing=str(routing),
                        templates=str(ROOT / "templates"), app_key=APP_KEY,
                        app_secret=APP_SECRET, agent_id="424242", api_base=fake.url)  # fmt: skip
    env = env_for(settings, RECEIVER_CONSOLE_TOKEN=TOKEN, RECEIVER_SECRET_KEY="k" * 32,
                  RECEIVER_EXTERNAL_URL=EXTERNAL)  # fmt: skip
    try:
        with serve(env, tmp / "serve.log") as srv:
            wait_for_log(srv, "directory_synced")
            box = Outbox(settings.data_dir)
            payload = (ROOT / "tests/fixtures/alertmanager/firing-1.json").read_bytes()
            fake.fail("asyncsend_v2", body={"errcode": 40035, "errmsg": "缺少参数 agent_id"})
            assert http("POST", srv.url + "/alertmanager", payload)[0] == 200
            wait(lambda: box.counts()["dead"] == 1, srv.text)
            payload = (ROOT / "tests/fixtures/alertmanager/firing-4.json").read_bytes()
            assert http("POST", srv.url + "/alertmanager", payload)[0] == 200
            wait(lambda: box.counts()["sent"] >= 1, srv.text)
            payload = (ROOT / "tests/fixtures/alertmanager/many-55.json").read_bytes()
            assert http("POST", srv.url + "/alertmanager", payload)[0] == 200
            wait(lambda: box.counts()["sent"] >= 2, srv.text)
            with chromium() as driver:
                yield {"url": srv.url, "driver": driver, "box": box, "fake": fake,
                       "routing": routing, "env": env, "srv": srv}  # fmt: skip
    finally:
        fake.stop()


def wait(predicate: Any, why: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(why())
        time.sleep(0.1)


def text(driver: Any, css: str) -> str:
    """The text of the first element `css` finds, waiting up to 10 s for it (a page loading)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    for _ in range(3):  # a page still replacing the last one: look again
        try:
            wait = WebDriverWait(driver, 10)
            found = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))
            return str(found.text)
        except (StaleElementReferenceException, WebDriverException) as e:
            last = e
            time.sleep(0.2)
    raise last


def submit(driver: Any, css: str) -> None:
    """Click `css` (a submit button) and wait for the next page to replace this one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    try:
        driver.find_element(By.CSS_SELECTOR, css).click()
    except WebDriverException as e:  # chromedriver may lose the button to the navigation it
        if "does not belong to the document" not in str(e):  # started; the wait below tells
            raise

    def replaced(d: Any) -> bool:
        # chromedriver may also say the node "does not belong to the document" while the
        # new page replaces it, where staleness_of only expects a stale reference.
        try:
            return bool(ec.staleness_of(page)(d))
        except WebDriverException as e:
            if "does not belong to the document" not in str(e):
                raise
            return True

    WebDriverWait(driver, 10).until(replaced)


def login(driver: Any, url: str, token: str = TOKEN) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/console/login")
    field = driver.find_element(By.NAME, "token")
    field.clear()
    field.send_keys(token)
    submit(driver, "main form button")


def page_ok(driver: Any, name: str) -> None:
    """No browser console error, every field labelled; then the screenshots."""
    assert console_errors(driver) == [], name
    assert unlabelled_fields(driver) == [], name
    assert "dingtalk-receiver" in driver.title
    screenshot(driver, name)


def test_a_wrong_token_fails_and_the_right_one_logs_in(site: dict[str, Any]) -> None:
    d, url = site["driver"], site["url"]
    d.delete_all_cookies()
    d.get(url + "/console/notifications")
    assert d.current_url.startswith(url + "/console/login")  # not logged in: the login page
    page_ok(d, "login")
    answers = set()
    for wrong in ("x", TOKEN[:-1], TOKEN + "!", "a" * 500):
        login(d, url, wrong)
        answers.add(text(d, "main"))
        assert "That token is not right." in text(d, "main")
        d.get_log("browser")  # the 401 itself is logged as a failed resource
    assert len(answers) == 1  # the same answer however wrong
    assert d.get_cookie("console_session") is None
    login(d, url)
    assert d.current_url == url + "/console/"
    cookie = d.get_cookie("console_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console/"


@pytest.fixture
def logged_in(site: dict[str, Any]) -> dict[str, Any]:
    if site["driver"].get_cookie("console_session") is None:
        login(site["driver"], site["url"])
    return site


def test_every_page_loads(logged_in: dict[str, Any]) -> None:
    d, url = logged_in["driver"], logged_in["url"]
    d.get(url + "/console/")
    assert text(d, "#counts")  # messages by state
    assert "dead" in text(d, "#counts") and "primary" in text(d, "main")
    assert "缺少参数 agent_id" in text(d, "main")  # the last errors
    assert "Running (not paused)" in text(d, "#sending")
    page_ok(d, "overview")
    d.get(url + "/console/notifications")
    rows = d.find_elements("css selector", "#notifications tbody tr")
    assert len(rows) >= 2 and "dead" in rows[-1].text  # newest first: the dead one was first
    page_ok(d, "notifications")
    dead_id = logged_in["box"].find("dead")[0].id
    d.get(f"{url}/console/notifications/{dead_id}")
    assert text(d, "#state") == "dead" and "40035" in text(d, "#history")
    # The on-call person (who depends on the date), by name from the synced directory.
    names = {"manager4220": "张三", "user0002": "Bob", "user0003": "Carol"}
    (userid,) = logged_in["box"].get(dead_id).userids
    assert f"{userid} {names[userid]} dead" in text(d, "#recipients")
    page_ok(d, "notification-dead")
    # The first DiskFull copy sent (with RECEIVER_EXTERNAL_URL each person gets their own)
    sent_id = [i for i in logged_in["box"].find("sent") if "DiskFull" in str(i.msg)][-1].id
    d.get(f"{url}/console/notifications/{sent_id}")
    assert "DiskFull" in text(d, ".dingtalk")  # the message as DingTalk shows it
    assert d.find_elements("css selector", ".dingtalk strong")  # markdown rendered
    assert "DiskFull" in text(d, "#alerts")  # the alerts, as received
    assert len(d.find_elements("css selector", "#alerts section.alert")) == 4
    page_ok(d, "notification-sent")
    d.get(url + "/console/routes/test?labels=" + quote("team=db\nseverity=critical"))
    page_ok(d, "route-tester")
    d.get(url + "/console/preview")
    page_ok(d, "preview")
    d.get(url + "/console/oncall")
    assert "override" in text(d, "main") and "carol" in text(d, "main")
    page_ok(d, "oncall")
    d.get(url + "/console/routing")
    assert "The file on disk is the running table." in text(d, "#diff")
    page_ok(d, "routing")


def test_the_route_tester_answers_as_the_cli_does(logged_in: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d, url = logged_in["driver"], logged_in["url"]
    env = {k: v for k, v in logged_in["env"].items() if k.startswith("RECEIVER_")}
    for labels, at in ROUTE_CASES:
        d.get(url + "/console/routes/test")
        d.find_element(By.ID, "labels").send_keys(labels)
        d.find_element(By.ID, "at").send_keys(at)
        submit(d, "main form button")
        args = ["routes", "test", "--json", "--at", at, *labels.splitlines()]
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
        cli = json.loads(result.output)
        shown = {
            "receivers": [r for r in text(d, "#receivers").split(",") if r != "none"],
            "userids": [u for u in text(d, "#userids").split(",") if u != "-"],
            "departments": [int(x) for x in text(d, "#departments").split(",") if x != "-"],
        }
        assert shown == {k: cli[k] for k in shown}, labels  # the JSON carries more facts
        assert console_errors(d) == []
    # The muted route shows, and why.
    d.get(url + "/console/routes/test?labels=" + quote(ROUTE_CASES[1][0]) + "&at="
          + quote(ROUTE_CASES[1][1]))  # fmt: skip
    assert "muted by mute_time_intervals weekends" in text(d, "#routes")
    assert "张三" in text(d, "#answer")  # manager4220, by name


def test_the_preview_renders_a_sample_within_the_budget(logged_in: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d, url = logged_in["driver"], logged_in["url"]
    d.get(url + "/console/preview")
    Select(d.find_element(By.ID, "sample")).select_by_value("alertmanager-many-55")
    Select(d.find_element(By.ID, "receiver")).select_by_value("ops")
    submit(d, "main form button")
    message = text(d, ".message")
    assert "of 2048 bytes" in message and "InstanceDown" in message
    assert console_errors(d) == []
    page_ok(d, "preview-rendered")


def test_retry_sends_a_dead_message_again(logged_in: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d, url, box, fake = logged_in["driver"], logged_in["url"], logged_in["box"], logged_in["fake"]
    (dead,) = box.find("dead")
    sends = len(fake.delivered())
    d.get(f"{url}/console/notifications/{dead.id}")
    submit(d, "#retry")
    assert "Queued to send again now." in text(d, "main")
    assert text(d, "#state") in ("queued", "sending", "sent")
    wait(lambda: box.get(dead.id).state == "sent", logged_in["srv"].text)  # type: ignore[union-attr]
    assert len(fake.delivered()) == sends + 1
    d.refresh()
    assert text(d, "#state") == "sent"
    assert d.find_elements(By.ID, "retry") == []  # a sent message offers no retry


def test_csrf_is_enforced(logged_in: dict[str, Any]) -> None:

    d, url, box = logged_in["driver"], logged_in["url"], logged_in["box"]
    ids = [i.id for i in box.find()]
    d.get(f"{url}/console/notifications/{ids[0]}")
    # A form whose CSRF token was tampered with: refused, nothing changes.
    d.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = arguments[0]; const i = document.createElement('input');"
        "i.type = 'hidden'; i.name = 'csrf'; i.value = 'forged'; f.appendChild(i);"
        "document.body.appendChild(f); f.submit();",
        f"{url}/console/notifications/{ids[0]}/drop",
    )
    assert "CSRF" in text(d, "main")
    d.get_log("browser")  # the 403 is logged as a failed resource
    assert box.get(ids[0]) is not None
    # The session cookie alone, from another client, is not enough either.
    cookie = d.get_cookie("console_session")["value"]
    r = requests.post(f"{url}/console/logout", cookies={"console_session": cookie}, timeout=10)
    assert r.status_code == 403
    r = requests.post(f"{url}/console/notifications/{ids[0]}/retry", timeout=10,
                      cookies={"console_session": cookie}, data={"csrf": "x"})  # fmt: skip
    assert r.status_code == 403


def test_logout_ends_the_session(logged_in: dict[str, Any]) -> None:

    d, url = logged_in["driver"], logged_in["url"]
    d.get(url + "/console/")
    submit(d, "form.logout button")
    assert d.current_url.startswith(url + "/console/login")
    assert d.get_cookie("console_session") is None
    d.get(url + "/console/")
    assert d.current_url.startswith(url + "/console/login")
    assert console_errors(d) == []


def test_the_n_more_link_opens_the_whole_notification(site: dict[str, Any]) -> None:
    """No login: the signed link alone opens the page, with every one of the 55 alerts."""
    import re

    d, url, fake = site["driver"], site["url"], site["fake"]
    texts = [json.dumps(r.body, ensure_ascii=False) for r in fake.delivered() if r.body]
    (cut,) = [t for t in texts if "InstanceDown" in t]
    link = re.search(r"https://receiver\.example\.com/n/([A-Za-z0-9_.-]+)", cut)
    assert link, cut
    d.delete_all_cookies()
    d.get(f"{url}/n/{link.group(1)}")
    assert "55 firing, 0 resolved" in text(d, "#summary")
    assert len(d.find_elements("css selector", "section.alert")) == 55
    assert "node-55.example.com" in text(d, "main")
    page_ok(d, "full-notification")
    body, _, sig = link.group(1).partition(".")
    for forged in (f"{body}.{sig[::-1]}", f"{body[:-2]}xx.{sig}", "x.y", "nonsense"):
        d.get(f"{url}/n/{forged}")
        assert text(d, "[role=alert]") == "This link is not valid, or it has expired."
        d.get_log("browser")  # the 403 is logged as a failed resource
    assert requests.get(f"{url}/n/{body}.{sig[::-1]}", timeout=10).status_code == 403
