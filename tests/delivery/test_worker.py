"""The delivery worker's decisions, over a real outbox and the fake DingTalk."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from pathlib import Path

import pytest

from receiver.delivery.followup import FollowUp
from receiver.delivery.limits import Limits, next_day
from receiver.delivery.outbox import Outbox
from receiver.delivery.owner import owner_is_dead, process_owner
from receiver.delivery.pipeline import Entry
from receiver.delivery.process import make_worker
from receiver.delivery.sending import Outcome
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import ERRCODES, Client, SendResult
from receiver.messages.budget import RESENT_MARK
from receiver.settings import Settings
from tests.conftest import ROOT
from tests.fakes.dingtalk import FakeDingTalk

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}


def enqueue(box: Outbox, *userids: str, group: str | None = None) -> int:
    """One item; each in its own alert group unless `group` says (a group's newer one
    replaces an older one still waiting)."""
    group = group if group is not None else f"g{next(_GROUPS)}"
    return box.enqueue([Entry("ops", MSG, userids)], source="alertmanager", group_key=group)[0]


_GROUPS = itertools.count()


def test_later_items_of_a_group_wait_for_its_earlier_one_other_groups_do_not(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    # `same_group` is not a newer state of `first` for the same people, so it does not
    # replace it: it shares "a", and waits.
    first, same_group = enqueue(box, "a", "b", group="g"), enqueue(box, "a", "c", group="g")
    other_group, other_user = enqueue(box, "a"), enqueue(box, "b")
    fake_dingtalk.fail("asyncsend_v2", times=1, status=200, body={"errcode": 40035})
    Worker(box, Client(live_settings)).run_once()
    states = {i.id: i.state for i in box.items()}
    assert states == {first: "dead", same_group: "queued", other_group: "sent", other_user: "sent"}
    assert [r.body["userid_list"] for r in fake_dingtalk.delivered() if r.body] == ["a", "b"]
    assert [r.body["userid_list"] for r in fake_dingtalk.sends() if r.body][0] == "a,b"


def test_an_old_claim_is_renewed_first_and_a_lost_lease_is_not_sent(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    enqueue(box, "a")
    worker = Worker(box, Client(live_settings), lease_s=60)
    (item,) = box.claim(owner="elsewhere:1:1", lease_s=60)  # not this worker's lease
    worker._claimed_at = 0.0  # its own claim long ago: the lease must be checked
    assert worker.handle(item) is Outcome.WAITING
    assert fake_dingtalk.delivered() == [] and f"lease_lost id={item.id}" in caplog.text
    assert box.get(item.id).owner == "elsewhere:1:1"  # type: ignore[union-attr]


def test_users_past_the_daily_limit_are_held_for_tomorrow(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    limits = Limits(box.path, rate=1000, daily=2)
    worker = Worker(box, Client(live_settings), limits=limits)
    for _ in range(2):
        enqueue(box, "a")
    worker.run_once()
    enqueue(box, "a", "b")
    worker.run_once()
    sent = [r.body["userid_list"] for r in fake_dingtalk.delivered() if r.body]
    assert sent == ["a", "a", "b"]
    (held,) = [i for i in box.items() if i.hold_reason]
    assert held.userids == ("a",) and held.state == "queued"
    assert held.next_attempt_at > held.created_at + 60
    assert "held id=3" in caplog.text and "userids=a" in caplog.text
    assert "user_daily_quota_warning userid=a" in caplog.text


def test_the_daily_limit_counts_on_the_workers_clock(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    """One clock for the count, the check and the hold: a worker whose clock is another
    day than the machine's counts and checks that day, and holds until after it."""
    box = Outbox(live_settings.data_dir)
    limits = Limits(box.path, rate=1000, daily=1)
    day = time.time() + 400 * 86400  # a day the real clock is not on
    worker = Worker(box, Client(live_settings), limits=limits, clock=lambda: day)
    enqueue(box, "a")
    worker.run_once()
    enqueue(box, "a")
    worker.run_once()
    assert [r.body["userid_list"] for r in fake_dingtalk.delivered() if r.body] == ["a"]
    (held,) = [i for i in box.items() if i.hold_reason]
    assert held.next_attempt_at == next_day(day)
    assert limits.over_daily(["a"], now=day) == ["a"] and limits.over_daily(["a"]) == []


def test_ip_not_whitelisted_tells_the_operator(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    enqueue(box, "a")
    body = {"errcode": 60020, "errmsg": "访问ip不在白名单之中 request ip=203.0.113.9"}
    fake_dingtalk.fail("asyncsend_v2", times=1, body=body)
    Worker(box, Client(live_settings)).run_once()
    (item,) = box.items()
    assert item.state == "dead" and item.errcode == 60020 and "白名单" in str(item.last_error)
    assert "whitelist the egress IP" in caplog.text and "DINGTALK_PROXY" in caplog.text


def test_a_repeated_retry_is_warned_once(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    enqueue(box, "a")
    worker = Worker(box, Client(live_settings), backoff_min_s=0, backoff_max_s=0)
    worker.sender = _Broken()  # type: ignore[assignment]  # fails the same way three times
    for _ in range(3):
        worker.run_once()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len([r for r in warnings if "retry_scheduled" in r.getMessage()]) == 1
    assert box.items()[0].attempts == 3


def test_followup_records_and_logs_who_was_missed(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    item_id = enqueue(box, "a", "nobody", "busy")
    client = Client(live_settings)
    Worker(box, client, followup_delay_s=0).run_once()
    fake_dingtalk.send_results[1001] = {
        "invalid_user_id_list": ["nobody"],
        "forbidden_user_id_list": ["busy"],
        "forbidden_list": [{"code": "143105", "count": 1, "userid": "busy"}],
        "read_user_id_list": ["a"],
    }
    assert FollowUp(box, client).run_once() == 1
    item = box.get(item_id)
    assert item is not None and item.followup_at is None and item.send_result is not None
    assert item.send_result["invalid"] == ["nobody"] and item.send_result["forbidden"] == ["busy"]
    assert "invalid_userids=nobody" in caplog.text
    assert "busy:143105(over the per-user daily limit)" in caplog.text
    assert FollowUp(box, client).run_once() == 0  # once per item
    (call,) = [r for r in fake_dingtalk.requests if r.name == "getsendresult"]
    assert call.body == {"agent_id": 424242, "task_id": 1001}


def test_users_dingtalk_refused_for_a_limit_get_it_again_once(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    first = enqueue(box, "a", "minute", "day", "dup", "odd")
    client = Client(live_settings)
    worker = Worker(box, client, followup_delay_s=0)
    worker.run_once()
    codes = {"minute": "143103", "day": "143205", "dup": "143106", "odd": "not-a-code"}
    fake_dingtalk.send_results[1001] = {
        "forbidden_user_id_list": list(codes),
        "forbidden_list": [{"code": c, "count": 1, "userid": u} for u, c in codes.items()],
        "read_user_id_list": ["a"],
    }
    followup = FollowUp(box, client, resend_after_s=0)
    assert followup.run_once() == 1
    again = {i.userids: i for i in box.items() if i.id != first}
    assert set(again) == {("minute",), ("day",)}  # not identical content, nor an unknown code
    assert again[("day",)].next_attempt_at == next_day(time.time())  # DingTalk's day
    assert "per-minute recipient limit" in str(again[("minute",)].hold_reason)
    assert "resend_scheduled id=1 as=" in caplog.text and "odd:not-a-code(unknown" in caplog.text

    worker.run_once()  # the per-minute one is due; the daily one waits for tomorrow
    sent = fake_dingtalk.delivered()[-1].body or {}
    assert sent["userid_list"] == "minute"
    assert sent["msg"]["text"]["content"] == MSG["text"]["content"] + RESENT_MARK
    fake_dingtalk.send_results[1002] = {
        "forbidden_user_id_list": ["minute"],
        "forbidden_list": [{"code": "143103", "count": 1, "userid": "minute"}],
    }
    assert followup.run_once() == 1
    assert len(box.items()) == 3  # a copy is sent again once, not in a loop
    assert "resend_skipped id=" in caplog.text


def test_an_unreadable_send_result_is_given_up_not_fatal(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    item_id = enqueue(box, "a")
    client = Client(live_settings)
    Worker(box, client, followup_delay_s=0).run_once()
    fake_dingtalk.send_results[1001] = ["not", "an object"]  # type: ignore[assignment]
    assert FollowUp(box, client).run_once() == 1
    item = box.get(item_id)
    assert item is not None and item.followup_at is None
    assert "send_result_unreadable id=1" in caplog.text
    assert FollowUp(box, client).run_once() == 0


def test_followup_waits_for_its_delay(live_settings: Settings, fake_dingtalk: FakeDingTalk) -> None:
    box = Outbox(live_settings.data_dir)
    enqueue(box, "a")
    client = Client(live_settings)
    Worker(box, client, followup_delay_s=60).run_once()
    assert FollowUp(box, client).run_once() == 0


def test_make_worker_uses_the_settings(live_settings: Settings) -> None:
    worker = make_worker(live_settings.with_(give_up_after=5.0, backoff_max=2.0, http_timeout=30))
    assert worker.give_up_after_s == 5.0 and worker.backoff_max_s == 2.0
    assert worker.lease_s == 140.0 and worker.followup is not None and worker.limits is not None


def test_a_dead_owner_is_recognised() -> None:
    me = process_owner()
    assert not owner_is_dead(me)
    assert owner_is_dead(me.rsplit(":", 1)[0] + ":0")  # same pid, another start: reused pid
    assert not owner_is_dead("elsewhere:1:1")  # another host: only its lease can tell


def test_the_docs_table_matches_the_code() -> None:
    text = (ROOT / "docs/delivery.md").read_text()
    for code, (kind, _) in ERRCODES.items():
        if 90001 < code < 90020:
            continue
        row = re.search(rf"^\|[^|\n]*`{code}`[^|\n]*\|\s*(\w+)", text, re.M)
        assert row, f"errcode {code} is not in docs/delivery.md"
        assert row.group(1) == kind, code


def test_delivery_settings_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "RECEIVER_GIVE_UP_AFTER": "2h",
            "RECEIVER_SEND_RATE": "2.5",
            "RECEIVER_FOLLOWUP_DELAY": "90",
            "RECEIVER_RETENTION": "3d",
            "RECEIVER_USER_DAILY_LIMIT": "400",
        }
    )
    assert (s.give_up_after, s.send_rate, s.followup_delay) == (7200, 2.5, 90)
    assert (s.retention, s.user_daily_limit, s.backoff_max) == (3 * 86400, 400, 300)
    with pytest.raises(ValueError, match="RECEIVER_GIVE_UP_AFTER"):
        Settings.from_env({"RECEIVER_GIVE_UP_AFTER": "tomorrow"})


def test_a_message_refused_as_too_long_is_cut_and_sent_not_killed(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    from receiver.ingest.alertmanager import parse_alertmanager
    from receiver.messages.budget import msg_size
    from receiver.messages.render import Renderer

    n = parse_alertmanager((ROOT / "tests/fixtures/alertmanager/firing-4.json").read_bytes())
    msg = Renderer(str(ROOT / "templates")).render(n).msg
    box = Outbox(live_settings.data_dir)
    box.enqueue(
        [Entry(receiver="ops", msg=msg, userids=("u1",))], source="alertmanager", group_key="g"
    )
    fake_dingtalk.fail("asyncsend_v2", body={"errcode": 40035, "errmsg": "消息内容长度超过限制"})
    worker = Worker(box, Client(live_settings))
    worker.run_once()
    worker.run_once()
    (item,) = box.items()
    assert item.state == "sent"
    first, second = (r.body for r in fake_dingtalk.sends())
    assert first is not None and second is not None
    assert msg_size(second["msg"]) <= msg_size(first["msg"]) * 3 // 4
    # Still a markdown message with the same title, and its uniqueness line survives.
    last_line = first["msg"]["markdown"]["text"].rsplit("\n", 1)[1]
    assert second["msg"]["markdown"]["title"] == first["msg"]["markdown"]["title"]
    assert second["msg"]["markdown"]["text"].endswith("\n" + last_line)


def test_other_permanent_errors_still_go_dead(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    enqueue(box, "u1")
    fake_dingtalk.fail("asyncsend_v2", body={"errcode": 40035, "errmsg": "缺少参数 agent_id"})
    Worker(box, Client(live_settings)).run_once()
    assert box.items()[0].state == "dead"


# -- edge cases that once lost, mangled or stalled an alert ----------------------------

MSG = {"msgtype": "text", "text": {"content": "磁盘满了\n" + "x" * 600 + "\n11:37:27 #a1b2c3"}}


def test_a_quota_error_that_says_exceeded_is_not_cut_as_too_long(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    # DingTalk's own wording for 90020 (dingtalk.com help 1061621972) says 超过.
    quota = (
        "您的企业本月api调用量已超过限制,调用量:10001次,额度:10000次,"
        "请登录开发者后台-资源管理-查看用量明细"
    )
    box = Outbox(live_settings.data_dir)
    item_id = enqueue(box, "a")
    fake_dingtalk.fail("asyncsend_v2", times=10, body={"errcode": 90020, "errmsg": quota})
    worker = Worker(box, Client(live_settings))
    for _ in range(3):
        worker.run_once()
    item = box.get(item_id)
    assert item is not None and item.state == "dead" and item.errcode == 90020
    assert item.msg == MSG  # the alert is whole, for `outbox retry --dead` once the quota resets
    assert len(fake_dingtalk.sends()) == 1


def test_an_unexpected_reply_does_not_kill_the_worker(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    first, other = enqueue(box, "a"), enqueue(box, "b")
    fake_dingtalk.fail("asyncsend_v2", times=1, body={"errcode": 0, "request_id": "r-1"})
    Worker(box, Client(live_settings), backoff_min_s=0, backoff_max_s=0).run_once()
    states = {i.id: i.state for i in box.items()}
    assert states == {first: "retry", other: "sent"}
    assert f"retry_scheduled id={first}" in caplog.text and "no task_id" in caplog.text


class _Broken:
    def async_send(self, *args: object) -> list[SendResult]:
        raise TypeError("a bug nobody foresaw")


def test_an_exception_nobody_foresaw_is_a_retry_not_a_dead_worker(
    live_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    item = enqueue(box, "a")
    Worker(box, _Broken(), backoff_min_s=0, backoff_max_s=0).run_once()
    assert {i.id: i.state for i in box.items()} == {item: "retry"}
    assert f"send_failed_unexpectedly id={item}" in caplog.text and "TypeError" in caplog.text


def test_a_lease_lost_while_waiting_for_the_limiter_is_not_sent(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    enqueue(box, "a")
    limits = Limits(str(Path(live_settings.data_dir) / "limits.sqlite3"), rate=1)
    assert limits.reserve(1) == 0  # the one call of this second is taken: the next one waits
    worker = Worker(box, Client(live_settings), limits=limits, lease_s=1.0)
    (item,) = box.claim(owner=worker.owner, lease_s=1.0)
    worker._claimed_at = time.monotonic()

    def steal() -> None:  # the process was frozen past its lease; another one took the item
        time.sleep(0.2)
        box.claim(owner="elsewhere:1:1", lease_s=60, now=time.time() + 5)

    thief = threading.Thread(target=steal)
    thief.start()
    assert worker.handle(item) is Outcome.WAITING
    thief.join()
    assert fake_dingtalk.sends() == [] and f"lease_lost id={item.id}" in caplog.text
    assert box.get(item.id).owner == "elsewhere:1:1"  # type: ignore[union-attr]


def test_a_probe_that_makes_no_call_does_not_hold_up_the_next_one(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    limits = Limits(str(Path(live_settings.data_dir) / "limits.sqlite3"), rate=1000, daily=1)
    limits.count_sent(["a"])  # "a" had the day's one message
    held, other = enqueue(box, "a"), enqueue(box, "b")
    box.pause(reason="http_5xx", error="HTTP 502", probe_in=0, item_id=10**6)
    worker = Worker(box, Client(live_settings), limits=limits)
    worker.run_once()  # the probe is `held`: held until tomorrow, no call made
    assert box.get(held).hold_reason and fake_dingtalk.sends() == []  # type: ignore[union-attr]
    pause = box.pause_state()
    assert pause is not None and pause.probe_at <= time.time()  # not a lease away
    worker.run_once()  # the next probe goes at once, and ends the pause
    assert box.pause_state() is None and box.get(other).state == "sent"  # type: ignore[union-attr]
