"""The send-result follow-up: some time after a send, ask DingTalk what became of it.

asyncsend_v2 answers errcode 0 even when a recipient will never see the message
(an unknown userid, a user over a silent limit). Only getsendresult tells. Each
sent item is followed up `RECEIVER_FOLLOWUP_DELAY` after its send; the result is
stored on the item (`outbox show`), logged when someone was missed, and counted in
`dingtalk_receiver_send_result_users_total{kind}`. DingTalk keeps results for 24 h,
so a follow-up that keeps failing is given up after that.

Users DingTalk refused for one of its limits get the message again (DINGTALK.md): a
minute later for the per-minute recipient limit, on the next DingTalk day for the
per-user daily one. The copy's uniqueness line is marked, since DingTalk would
suppress identical content; a copy is not sent again a second time.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from receiver import metrics
from receiver.delivery.escalate import note_reads
from receiver.delivery.limits import next_day
from receiver.delivery.outbox import Item, Outbox
from receiver.errors import DingTalkError, OutboxUnavailable
from receiver.messages.budget import resent

log = logging.getLogger(__name__)

RESULT_KEPT_S = 24 * 3600.0
KINDS = {
    "invalid": "invalid_user_id_list",
    "forbidden": "forbidden_user_id_list",
    "failed": "failed_user_id_list",
}
FORBIDDEN_CODES = {
    143103: "over the per-minute recipient limit",
    143104: "over the per-minute recipient limit",
    143203: "over the per-minute recipient limit",
    143204: "over the per-minute recipient limit",
    143105: "over the per-user daily limit",
    143205: "over the per-user daily limit",
    143106: "identical content already sent today",
    143206: "identical content already sent today",
}
PER_MINUTE_CODES = {143103, 143104, 143203, 143204}
PER_DAY_CODES = {143105, 143205}
RESEND_AFTER_S = 60.0


def _code(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ResultSource(Protocol):
    def get_send_result(self, task_id: int) -> dict[str, Any]: ...


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the send_result of each task into lists of userids by kind, plus forbidden codes."""
    out: dict[str, Any] = {kind: [] for kind in KINDS}
    out["forbidden_codes"] = {}
    for result in results:
        for kind, key in KINDS.items():
            out[kind] += [str(u) for u in result.get(key) or []]
        for entry in result.get("forbidden_list") or []:
            if isinstance(entry, dict) and "userid" in entry:
                out["forbidden_codes"][str(entry["userid"])] = entry.get("code")
    return out


class FollowUp:
    def __init__(
        self,
        outbox: Outbox,
        client: ResultSource,
        *,
        retry_s: float = 60.0,
        resend_after_s: float = RESEND_AFTER_S,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.retry_s = retry_s
        self.resend_after_s = resend_after_s

    def run_once(self) -> int:
        items = self.outbox.claim_followups(limit=10)
        for item in items:
            try:
                self.follow(item)
            except OutboxUnavailable:
                raise
            except Exception as e:  # a reply nobody foresaw must not kill the delivery loop
                log.error("send_result_unreadable id=%d error=%s: %s; giving up",
                          item.id, type(e).__name__, e)  # fmt: skip
                self.outbox.record_followup(item.id, None, error=f"{type(e).__name__}: {e}")
        return len(items)

    def follow(self, item: Item) -> None:
        try:
            results = [self.client.get_send_result(t) for t in item.task_ids]
        except DingTalkError as e:
            now = time.time()
            again = now + self.retry_s
            if item.sent_at is None or again > item.sent_at + RESULT_KEPT_S or not e.retryable:
                log.error("send_result_unavailable id=%d error=%s; giving up", item.id, e)
                self.outbox.record_followup(item.id, None, error=str(e), again_at=None)
            else:
                log.warning("send_result_retry id=%d error=%s", item.id, e)
                self.outbox.record_followup(item.id, None, error=str(e), again_at=again)
            return
        summary = summarize(results)
        self.outbox.record_followup(item.id, summary)
        readers = [str(u) for r in results for u in r.get("read_user_id_list") or []]
        note_reads(self.outbox, item.id, readers, time.time())  # the ack page's "read"
        missed = False
        for kind in KINDS:
            if summary[kind]:
                missed = True
                metrics.send_result_users.labels(kind).inc(len(summary[kind]))
        if not missed:
            log.info("send_result id=%d task_ids=%s all delivered", item.id, list(item.task_ids))
            return
        codes = ",".join(
            f"{u}:{c}({FORBIDDEN_CODES.get(_code(c) or 0, 'unknown code')})"
            for u, c in summary["forbidden_codes"].items()
        )
        log.warning(
            "send_result_missed id=%d receiver=%s task_ids=%s invalid_userids=%s"
            " forbidden_userids=%s forbidden_codes=%s failed_userids=%s"
            " (an invalid userid is wrong in routing.yaml, receiver %r)",
            item.id, item.receiver, list(item.task_ids), ",".join(summary["invalid"]),
            ",".join(summary["forbidden"]), codes, ",".join(summary["failed"]), item.receiver,
        )  # fmt: skip
        self.resend(item, summary["forbidden_codes"])

    def resend(self, item: Item, codes: dict[str, Any]) -> None:
        """Queue the message again for the users DingTalk refused for one of its limits."""
        now = time.time()
        later: dict[tuple[float, str, str], list[str]] = {}
        for userid, value in codes.items():
            code = _code(value)
            if code in PER_MINUTE_CODES:
                key = (now + self.resend_after_s, "dingtalk_per_minute",
                       "DingTalk refused it for its per-minute recipient limit; sent again"
                       " a minute later")  # fmt: skip
            elif code in PER_DAY_CODES:
                key = (next_day(now), "dingtalk_per_day",
                       "DingTalk refused it for its per-user daily limit; sent again on the"
                       " next DingTalk day")  # fmt: skip
            else:
                continue
            later.setdefault(key, []).append(userid)
        if not later:
            return
        msg = resent(item.msg)
        if msg is None:
            log.warning("resend_skipped id=%d: this copy was already a second send", item.id)
            return
        for (at, limit, reason), userids in later.items():
            new_id = self.outbox.resend(item.id, userids, at=at, reason=reason, msg=msg)
            if new_id is None:
                continue
            metrics.held.labels(limit).inc(len(userids))
            log.warning(
                "resend_scheduled id=%d as=%d userids=%s at=%s reason=%s",
                item.id, new_id, ",".join(userids), _iso(at), reason,
            )  # fmt: skip


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
