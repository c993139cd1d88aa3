"""Fetching the DingTalk directory into a `DirectoryStore`, once or on an interval.

The walk uses DingTalk's current APIs (DINGTALK.md): `topapi/v2/department/listsub`
from the root (dept_id 1) down, one level per call, then `topapi/v2/user/list` for
each department, paged by cursor/next_cursor/has_more, 100 at a time. One person
in several departments is one user with all their departments.

Calls are spaced by `min_interval`; a retryable error (-1, 90001-90019 such as
90002, HTTP 5xx, the `punish` body) is retried with exponential backoff; a
permission error names the permission to grant. Nothing is written unless the
whole walk succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from receiver.directory.pg import open_store
from receiver.directory.store import Department, DirectoryStore, SyncStats, User
from receiver.errors import DingTalkError, PermanentError, ReceiverError, RetryableError
from receiver.settings import Settings

log = logging.getLogger(__name__)

ROOT_DEPT = 1
LISTSUB_PATH = "/topapi/v2/department/listsub"
USER_LIST_PATH = "/topapi/v2/user/list"
PAGE_SIZE = 100
FAILED_SYNC_RETRY_S = 900.0

# What to grant in the DingTalk developer console (开发者后台 > 应用 > 权限管理).
PERMISSIONS = {
    LISTSUB_PATH: "通讯录部门信息读权限 (qyapi_get_department_list)",
    USER_LIST_PATH: "通讯录部门成员读权限 (qyapi_get_department_member)"
    " and 成员信息读权限 (qyapi_get_member)",
}
SCOPE_ERRCODES = frozenset({50002, 50004})  # user / department outside the app's contact scope


def spacing(settings: Settings) -> float:
    """Seconds between calls for RECEIVER_DIRECTORY_QPS (0 means no spacing)."""
    return 1.0 / settings.directory_qps if settings.directory_qps > 0 else 0.0


class Caller(Protocol):
    """What the sync needs of `receiver.dingtalk.client.Client`."""

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Progress:
    """Where a sync is: `departments` found so far, `users` so far, and departments paged."""

    phase: str  # "departments" | "users"
    departments: int
    users: int
    paged: int = 0


def permission_hint(path: str, error: DingTalkError) -> str | None:
    """What to do about an error that means the app may not read the directory."""
    text = f"{error} {error.errmsg}"
    if error.errcode == 60011 or (error.errcode == 88 and "60011" in text):
        need = PERMISSIONS.get(path, "the contact (通讯录) read permissions")
        return (
            f"the app lacks the permission to call {path}: in the DingTalk developer console"
            f" (开发者后台 > 应用 > 权限管理) grant {need}, then run sync-users again"
        )
    if error.errcode in SCOPE_ERRCODES:
        return (
            f"{path} is outside the app's contact scope: in the DingTalk developer console set"
            " the app's 通讯录权限范围 to 全部员工 (all employees), then run sync-users again"
        )
    return None


@dataclass
class Throttled:
    """A `Caller` that spaces calls and retries retryable errors with backoff."""

    client: Caller
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    min_interval: float = 0.05
    max_retries: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    calls: int = 0
    retries: int = 0
    _next_at: float = field(default=0.0, repr=False)
    _last_error: str = field(default="", repr=False)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            wait = self._next_at - self.clock()
            if wait > 0:
                self.sleep(wait)
            self._next_at = self.clock() + self.min_interval
            self.calls += 1
            try:
                return self.client.call(path, body)
            except RetryableError as e:
                if attempt >= self.max_retries:
                    raise
                delay = min(self.max_delay, self.base_delay * 2**attempt)
                if str(e) != self._last_error:  # warn when the error changes, not every time
                    log.warning("directory_retry_scheduled delay=%.1fs error=%s", delay, e)
                    self._last_error = str(e)
                attempt += 1
                self.retries += 1
                self.sleep(delay)
            except PermanentError as e:
                hint = permission_hint(path, e)
                if hint is None:
                    raise
                raise PermanentError(f"{e}; {hint}", errcode=e.errcode, errmsg=e.errmsg) from None


def fetch(
    caller: Caller, progress: Callable[[Progress], None] | None = None
) -> tuple[list[Department], list[User]]:
    """The whole directory: every department under the root and every user, once each."""
    report = progress or (lambda p: None)
    depts: dict[int, Department] = {ROOT_DEPT: Department(ROOT_DEPT, "", None)}
    queue = [ROOT_DEPT]
    while queue:
        parent = queue.pop(0)
        reply = caller.call(LISTSUB_PATH, {"dept_id": parent, "language": "zh_CN"})
        for item in _list(reply.get("result"), LISTSUB_PATH):
            dept_id = int(item["dept_id"])
            if dept_id not in depts:  # a cycle or a repeat would otherwise loop forever
                parent_id = item.get("parent_id", parent)
                depts[dept_id] = Department(dept_id, str(item.get("name", "")), int(parent_id))
                queue.append(dept_id)
        report(Progress("departments", len(depts), 0))

    users: dict[str, dict[str, Any]] = {}
    for paged, dept_id in enumerate(depts, start=1):
        cursor, seen = 0, set()
        while True:
            body = {"dept_id": dept_id, "cursor": cursor, "size": PAGE_SIZE, "language": "zh_CN"}
            result = caller.call(USER_LIST_PATH, body).get("result")
            if not isinstance(result, dict):
                raise PermanentError(f"{USER_LIST_PATH}: unexpected reply (no result)")
            for raw in _list(result.get("list"), USER_LIST_PATH):
                _merge(users, raw, dept_id)
            report(Progress("users", len(depts), len(users), paged))
            if not result.get("has_more"):
                break
            seen.add(cursor)
            cursor = int(result.get("next_cursor", cursor))
            if cursor in seen:
                raise PermanentError(f"{USER_LIST_PATH}: dept {dept_id}: the cursor did not move")
    return list(depts.values()), [_user(u) for u in users.values()]


def sync(
    store: DirectoryStore,
    client: Caller,
    *,
    progress: Callable[[Progress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    min_interval: float = 0.05,
    max_retries: int = 6,
) -> SyncStats:
    """Fetch everything, then swap it into the store; on any error the store is untouched."""
    started = time.monotonic()
    caller = Throttled(client, sleep=sleep, min_interval=min_interval, max_retries=max_retries)
    try:
        departments, users = fetch(caller, progress)
    except (KeyError, TypeError, ValueError) as e:
        raise PermanentError(
            f"DingTalk directory: unexpected reply ({type(e).__name__}: {e})"
        ) from None
    if not users and store.counts()[1]:
        raise PermanentError(
            "DingTalk listed no users at all; keeping the previous directory. Check the app's"
            " 通讯录权限范围 (contact scope) in the DingTalk developer console"
        )
    store.replace(departments, users)
    stats = SyncStats(
        departments=len(departments),
        users=len(users),
        calls=caller.calls,
        retries=caller.retries,
        seconds=time.monotonic() - started,
        with_mobile=sum(1 for u in users if u.mobile),
        with_email=sum(1 for u in users if u.email),
    )
    log.info(
        "directory_synced departments=%d users=%d calls=%d retries=%d",
        stats.departments,
        stats.users,
        stats.calls,
        stats.retries,
    )
    return stats


class DirectorySync:
    """Re-syncs the directory every `settings.directory_sync_interval` seconds.

    `serve` calls `maybe_sync()` from a loop; it does nothing in dry-run mode, when
    the interval is 0, or before the interval has passed since the last sync (by
    any process: the time is read from the store). After a failure it waits
    min(interval, 15 min) before trying again, and the old directory stays.
    """

    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], Caller],
        *,
        store: DirectoryStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.interval = settings.directory_sync_interval
        self.store = store or open_store(settings.data_dir, settings.database_url)
        self._connect = connect  # the DingTalk client, made on first use (never in dry-run)
        self._client: Caller | None = None
        self._sleep = sleep
        self._retry_at = 0.0

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and not self.settings.dry_run

    def due(self, now: float) -> bool:
        if not self.enabled or now < self._retry_at:
            return False
        last = self.store.synced_at()
        return last is None or now - last >= self.interval

    def maybe_sync(self, now: float | None = None) -> bool:
        """Sync if due; True when a sync ran and succeeded. Never raises a ReceiverError."""
        now = time.time() if now is None else now
        try:
            if not self.due(now):  # reads the store, which can fail too
                return False
            with self.store.sync_lock() as mine:  # one replica syncs; the others skip it
                if not mine or not self.due(now):  # or it synced while we waited
                    return False
                if self._client is None:
                    self._client = self._connect()
                sync(
                    self.store, self._client, sleep=self._sleep,
                    min_interval=spacing(self.settings),
                )  # fmt: skip
        except ReceiverError as e:
            self._retry_at = now + min(self.interval, FAILED_SYNC_RETRY_S)
            log.warning("directory_sync_failed error=%s; keeping the previous directory", e)
            return False
        return True


def _list(value: Any, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PermanentError(f"{path}: unexpected reply (not a list of objects)")
    return value


def _merge(users: dict[str, dict[str, Any]], raw: dict[str, Any], dept_id: int) -> None:
    userid = str(raw["userid"])
    seen = users.setdefault(userid, {**raw, "_depts": []})
    listed = [int(d) for d in raw.get("dept_id_list") or []]
    for d in [dept_id, *listed]:
        if d not in seen["_depts"]:
            seen["_depts"].append(d)


def _user(raw: dict[str, Any]) -> User:
    def s(key: str) -> str:
        value = raw.get(key)
        return "" if value is None else str(value).strip()

    mobile, state = s("mobile"), s("state_code")
    keys: list[tuple[str, str]] = []
    if mobile and state and state != "86":
        keys.append(("mobile", state + mobile))
    if s("org_email"):
        keys.append(("email", s("org_email")))
    return User(
        userid=s("userid"),
        name=s("name"),
        mobile=mobile,
        email=s("email") or s("org_email"),
        title=s("title"),
        departments=tuple(raw["_depts"]),
        active=raw.get("active") is not False,
        keys=tuple(keys),
    )
