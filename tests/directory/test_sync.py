"""Syncing the directory from the fake DingTalk, through the real client."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.dingtalk.client import Client
from receiver.directory.store import DirectoryStore, SyncStats
from receiver.directory.sync import DirectorySync, Progress, spacing, sync
from receiver.errors import PermanentError, RetryableError
from receiver.settings import Settings
from tests.fakes import directory as people
from tests.fakes.dingtalk import FakeDingTalk


@pytest.fixture
def store(live_settings: Settings) -> DirectoryStore:
    return DirectoryStore(live_settings.data_dir)


@pytest.fixture
def client(live_settings: Settings, fake_dingtalk: FakeDingTalk) -> Client:
    fake_dingtalk.directory = people.company()
    return Client(live_settings)


def no_sleep(seconds: float) -> None:
    pass


def run(store: DirectoryStore, client: Client, **kw: Any) -> SyncStats:
    """A sync without waits: no spacing between calls, no real sleep in backoff."""
    return sync(store, client, sleep=no_sleep, min_interval=0, **kw)


def test_walks_the_tree_and_pages_every_department(
    store: DirectoryStore, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    stats = sync(store, client, sleep=no_sleep, min_interval=0)

    assert (stats.departments, stats.users) == (6, people.TOTAL_USERS)
    walked = [r.body["dept_id"] for r in fake_dingtalk.requests if r.name == "listsub" and r.body]
    assert sorted(walked) == [1, 2, 3, 4, 5, 6]  # recursively, from the root
    pages = [
        (r.body["dept_id"], r.body["cursor"], r.body["size"])
        for r in fake_dingtalk.requests
        if r.path == "/topapi/v2/user/list" and r.body
    ]
    assert [p for p in pages if p[0] == 6] == [(6, 0, 100), (6, 100, 100), (6, 200, 100)]
    assert {p[0] for p in pages} == {1, 2, 3, 4, 5, 6}
    assert store.counts() == (6, people.TOTAL_USERS)
    assert store.find("name", "Support 0249") == ["sup0249"]  # on the third page
    assert store.departments()[4].name == "DBA" and store.departments()[4].parent_id == 2


def test_a_person_in_two_departments_is_one_user_with_both(
    store: DirectoryStore, client: Client
) -> None:
    run(store, client)
    alice = store.get("manager4220")
    assert alice is not None
    assert (alice.name, alice.mobile, alice.email, alice.title) == (
        "张三",
        "13800000001",
        "Alice@Example.com",
        "DBA lead",
    )
    assert alice.departments == (2, 5) and alice.active
    assert store.find("name", "张三") == ["manager4220"]
    assert [u.userid for u in store.search("张三")] == ["manager4220"]


def test_look_ups_after_a_sync(store: DirectoryStore, client: Client) -> None:
    run(store, client)
    assert store.find("mobile", "+86 139-0000-0002") == ["user0002"]
    assert store.find("email", "BOB@example.com") == ["user0002"]
    assert store.find("email", "carol@corp.example") == ["user0003"]  # org_email
    assert store.find("mobile", "+1 415 555 0100") == ["user0003"]  # with its state_code
    assert store.find("name", "李四") == ["user0004", "user0005"]
    lisi_b = store.get("user0005")
    assert lisi_b is not None and lisi_b.active is False


def test_progress_counts_departments_then_users(store: DirectoryStore, client: Client) -> None:
    seen: list[Progress] = []
    run(store, client, progress=seen.append)
    phases = [p.phase for p in seen]
    assert phases[0] == "departments" and phases[-1] == "users"
    assert phases.index("users") == 6  # one report per listsub call first
    assert seen[-1] == Progress("users", 6, people.TOTAL_USERS, 6)
    users = [p.users for p in seen]
    assert users == sorted(users)


def test_rate_limits_are_retried_with_backoff(
    store: DirectoryStore, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    throttled = {"errcode": 90002, "errmsg": "api调用频率超限"}
    fake_dingtalk.fail("list", times=3, body=throttled, after=2)
    fake_dingtalk.fail("listsub", times=1, status=503)
    fake_dingtalk.fail("listsub", times=1, body={"punish": "deny"}, after=3)
    sleeps: list[float] = []

    stats = sync(store, client, sleep=sleeps.append, min_interval=0)

    assert stats.retries == 5
    assert stats.users == people.TOTAL_USERS
    assert sorted(sleeps) == [1.0, 1.0, 1.0, 2.0, 4.0]  # 2**attempt per call


def test_calls_are_spaced(store: DirectoryStore, client: Client) -> None:
    sleeps: list[float] = []
    sync(store, client, sleep=sleeps.append, min_interval=0.5)
    assert sleeps and all(0 < s <= 0.5 for s in sleeps)


def test_retries_run_out_and_the_old_directory_stays(
    store: DirectoryStore, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    run(store, client)
    before = store.synced_at()
    fake_dingtalk.directory.members[3] = []  # bob leaves...
    fake_dingtalk.fail("list", times=100, body={"errcode": 90002, "errmsg": "throttled"}, after=4)

    with pytest.raises(RetryableError, match="90002"):
        run(store, client, max_retries=2)

    assert store.find("email", "bob@example.com") == ["user0002"]  # ...but not yet here
    assert store.counts() == (6, people.TOTAL_USERS)
    assert store.synced_at() == before


def test_a_sync_that_fails_halfway_keeps_the_old_directory(
    store: DirectoryStore, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    run(store, client)
    before = store.synced_at()
    fake_dingtalk.directory.members[2] = [people.person("newbie", "New Hire", [2])]
    fake_dingtalk.directory.members[3] = []
    fake_dingtalk.fail("list", times=1, body={"errcode": 400002, "errmsg": "无效的参数"}, after=4)

    with pytest.raises(PermanentError, match="400002"):
        run(store, client)

    assert store.find("name", "New Hire") == []
    assert store.find("name", "Bob") == ["user0002"]
    assert store.synced_at() == before
    run(store, client)  # and the next good sync takes the new directory
    assert store.find("name", "New Hire") == ["newbie"]
    assert store.find("name", "Bob") == []


def test_an_empty_answer_does_not_wipe_the_directory(
    store: DirectoryStore, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    run(store, client)
    fake_dingtalk.directory.members.clear()  # e.g. the contact scope was narrowed to nothing
    with pytest.raises(PermanentError, match="listed no users at all"):
        run(store, client)
    assert store.counts() == (6, people.TOTAL_USERS)


@pytest.mark.parametrize(
    ("name", "reply", "grant"),
    [
        (
            "listsub",
            {
                "errcode": 88,
                "sub_code": "60011",
                "errmsg": "ding talk error[subcode=60011,submsg=missing permission]",
            },
            "qyapi_get_department_list",
        ),
        ("list", {"errcode": 60011, "errmsg": "no permission"}, "qyapi_get_department_member"),
        ("list", {"errcode": 50004, "errmsg": "部门不在权限范围"}, "通讯录权限范围"),
    ],
)
def test_permission_errors_say_what_to_grant(
    store: DirectoryStore,
    client: Client,
    fake_dingtalk: FakeDingTalk,
    name: str,
    reply: dict[str, object],
    grant: str,
) -> None:
    fake_dingtalk.fail(name, times=1, body=reply)
    with pytest.raises(PermanentError) as caught:
        run(store, client)
    message = str(caught.value)
    assert grant in message and "DingTalk developer console" in message
    assert "fake-app-secret" not in message and "tok-" not in message
    assert store.synced_at() is None


def test_an_unmoving_cursor_is_an_error_not_a_loop(
    store: DirectoryStore, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    stuck = {"errcode": 0, "result": {"has_more": True, "next_cursor": 0, "list": []}}
    fake_dingtalk.fail("list", times=5, body=stuck)
    with pytest.raises(PermanentError, match="cursor did not move"):
        run(store, client)


def test_a_malformed_reply_is_a_permanent_error(
    store: DirectoryStore, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    fake_dingtalk.fail("list", times=1, body={"errcode": 0, "result": {"list": [{"name": "x"}]}})
    with pytest.raises(PermanentError, match="unexpected reply"):
        run(store, client)


# -- the periodic sync that serve runs -----------------------------------------------------
def test_maybe_sync_runs_when_due(
    live_settings: Settings, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    quick = live_settings.with_(directory_sync_interval=3600, directory_qps=0)
    syncer = DirectorySync(quick, lambda: Client(quick), sleep=no_sleep)
    assert syncer.store.synced_at() is None
    assert syncer.maybe_sync() is True
    synced = syncer.store.synced_at()
    assert synced is not None and syncer.store.find("name", "Bob") == ["user0002"]
    calls = len(fake_dingtalk.requests)

    assert syncer.maybe_sync(synced + 3599) is False  # not due
    assert len(fake_dingtalk.requests) == calls
    assert syncer.maybe_sync(synced + 3600) is True


def test_maybe_sync_failure_keeps_the_directory_and_backs_off(
    live_settings: Settings, client: Client, fake_dingtalk: FakeDingTalk
) -> None:
    quick = live_settings.with_(directory_sync_interval=6 * 3600, directory_qps=0)
    syncer = DirectorySync(quick, lambda: Client(quick), sleep=no_sleep)
    assert syncer.maybe_sync() is True
    synced = syncer.store.synced_at()
    assert synced is not None
    fake_dingtalk.fail("listsub", times=1, body={"errcode": 60011, "errmsg": "no permission"})

    due = synced + 6 * 3600
    assert syncer.maybe_sync(due) is False  # failed: logged, not raised
    assert syncer.store.synced_at() == synced
    assert syncer.store.find("name", "Bob") == ["user0002"]
    calls = len(fake_dingtalk.requests)
    assert syncer.maybe_sync(due + 899) is False  # waiting 15 minutes before the next try
    assert len(fake_dingtalk.requests) == calls
    assert syncer.maybe_sync(due + 900) is True


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_maybe_sync_is_off_without_credentials_or_interval(
    settings: Settings, live_settings: Settings, fake_dingtalk: FakeDingTalk, interval: float
) -> None:
    chosen = live_settings if interval == 0 else settings  # settings: dry run
    syncer = DirectorySync(chosen.with_(directory_sync_interval=interval), lambda: Client(chosen))
    assert syncer.enabled is False
    assert syncer.maybe_sync() is False
    assert fake_dingtalk.requests == []


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("", 21600.0),
        ("0", 0.0),
        ("3600", 3600.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("6h", 21600.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
    ],
)
def test_sync_interval_setting(raw: str, seconds: float) -> None:
    env = {"RECEIVER_DIRECTORY_SYNC_INTERVAL": raw}
    assert Settings.from_env(env).directory_sync_interval == seconds


@pytest.mark.parametrize(("raw", "spaced"), [("", 0.2), ("20", 0.05), ("0", 0.0)])
def test_qps_setting_spaces_calls(raw: str, spaced: float) -> None:
    assert spacing(Settings.from_env({"RECEIVER_DIRECTORY_QPS": raw})) == spaced


@pytest.mark.parametrize("raw", ["soon", "-1h", "6x"])
def test_sync_interval_setting_rejects_nonsense(raw: str) -> None:
    with pytest.raises(ValueError, match="RECEIVER_DIRECTORY_SYNC_INTERVAL"):
        Settings.from_env({"RECEIVER_DIRECTORY_SYNC_INTERVAL": raw})
