"""Prometheus metrics, correct under several gunicorn workers and the delivery process.

`serve` sets PROMETHEUS_MULTIPROC_DIR (under RECEIVER_DATA_DIR) before anything
imports prometheus_client, so every process writes its own mmap files and
`/metrics` sums them. Outbox depth is read from SQLite at scrape time, so it is
the same whichever worker answers. In tests (one process) the default registry
is used as is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

NS = "dingtalk_receiver"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

payloads_received = Counter(
    f"{NS}_payloads_received_total", "Webhook payloads received, by source and outcome.",
    ["source", "outcome"],
)  # fmt: skip
duplicate_payloads = Counter(
    f"{NS}_duplicate_payloads_total",
    "Payloads accepted but not stored: the same notification within RECEIVER_DEDUP_WINDOW.",
    ["source"],
)
alerts_received = Counter(f"{NS}_alerts_received_total", "Alerts in accepted payloads.", ["source"])
messages_enqueued = Counter(
    f"{NS}_messages_enqueued_total", "Outbox items committed (one per DingTalk call).", ["receiver"]
)
plan_failures = Counter(
    f"{NS}_plan_failures_total",
    "Accepted webhooks that could not be routed and rendered yet (kept, tried again).",
)
sends = Counter(
    f"{NS}_sends_total",
    "asyncsend_v2 attempts, by outcome and error class.",
    ["outcome", "errclass"],
)
api_duration = Histogram(
    f"{NS}_dingtalk_api_duration_seconds", "Latency of DingTalk API calls.", ["api"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip
commit_batch_rows = Histogram(
    f"{NS}_commit_batch_rows",
    "Webhooks written by one accept transaction (one fsync): the group commit's batch size.",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512),
)
retries = Counter(f"{NS}_retries_total", "Outbox items scheduled for another attempt.")
dead_lettered = Counter(f"{NS}_dead_lettered_total", "Outbox items that went to dead.")
token_refreshes = Counter(f"{NS}_token_refreshes_total", "Access tokens fetched from DingTalk.")
send_result_users = Counter(
    f"{NS}_send_result_users_total",
    "Recipients that getsendresult reported as invalid, forbidden or failed.", ["kind"],
)  # fmt: skip
held = Counter(
    f"{NS}_held_recipients_total",
    "Recipients held back by a limit: ours, or DingTalk's (then sent again).", ["limit"],
)  # fmt: skip
user_daily_quota_warnings = Counter(
    f"{NS}_user_daily_quota_warnings_total",
    "Users who reached 80 % of the per-user daily message limit.",
)
limit_waits = Counter(
    f"{NS}_limit_wait_seconds_total",
    "Seconds the delivery worker waited for the send rate or per-minute limits.",
)
escalations = Counter(
    f"{NS}_escalations_total", "Escalation steps sent, by policy and step.", ["policy", "step"]
)
acks = Counter(f"{NS}_acks_total", "Groups acknowledged, by how (page, cli).", ["via"])
_PAGE_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
time_to_read = Histogram(
    f"{NS}_time_to_read_seconds",
    "From a notification's first send to the first read receipt DingTalk reported.",
    buckets=_PAGE_BUCKETS,
)
time_to_ack = Histogram(
    f"{NS}_time_to_ack_seconds", "From a notification being received to its acknowledgement.",
    buckets=_PAGE_BUCKETS,
)  # fmt: skip
config_reloads = Counter(f"{NS}_config_reloads_total", "Config reloads, by outcome.", ["outcome"])
config_last_reload_ok = Gauge(
    f"{NS}_config_last_reload_successful",
    "1 if routing.yaml as it is on disk loaded in every process; 0 while one refuses it"
    " (the previous table keeps running).", multiprocess_mode="livemin",
)  # fmt: skip
config_last_reload = Gauge(
    f"{NS}_config_last_reload_success_timestamp_seconds",
    "When the running routing table was loaded.", multiprocess_mode="max",
)  # fmt: skip
template_fallbacks = Counter(
    f"{NS}_template_fallbacks_total",
    "Renders that fell back to the default template.",
    ["template"],
)
robot_posts = Counter(
    f"{NS}_robot_posts_total",
    "Group robot copies by robot and outcome (sent, retry, dead); also counted in sends_total.",
    ["robot", "outcome"],
)
robot_digests = Counter(
    f"{NS}_robot_digests_total",
    "Robot posts that carried a digest of queued copies, to stay under the robot's rate.",
)
delivery_heartbeat = Gauge(
    f"{NS}_delivery_heartbeat_timestamp_seconds",
    "Last time the delivery worker polled the outbox.", multiprocess_mode="max",
)  # fmt: skip

# Counters with a known set of labels start at 0 in every process, as Prometheus's own
# do: `increase()` sees nothing in a series that first appears at 1, so the first failed
# reload or the first 503 would never fire the rules in examples/prometheus-rules.yml.
for _source in ("alertmanager", "grafana"):
    alerts_received.labels(_source)
    duplicate_payloads.labels(_source)
    for _outcome in ("accepted", "rejected", "invalid", "unavailable"):
        payloads_received.labels(_source, _outcome)
for _outcome in ("success", "failure"):
    config_reloads.labels(_outcome)
# Every process that imports this has a value file, the arbiter too, which loads no
# table: 1 there, so that only a process that refuses the file pulls the minimum to 0.
config_last_reload_ok.set(1)
sends.labels("sent", "")


class Children:
    """`metric.labels(*values)`, remembered: the accept path counts every webhook, and
    `labels` takes a lock and builds a key each time. Same child, same count."""

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *values: str) -> Counter:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


def mark_process_dead(pid: int) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class OutboxCollector(Collector):
    """Outbox depth by state, the oldest undelivered message, and the pause: at scrape time."""

    def __init__(
        self,
        stats: Callable[[], tuple[dict[str, int], float | None]],
        paused: Callable[[], tuple[str, float] | None] | None = None,
    ) -> None:
        self.stats = stats
        self.paused = paused

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts, oldest = self.stats()
        depth = GaugeMetricFamily(f"{NS}_outbox_items", "Outbox items by state.", labels=["state"])
        for state, n in counts.items():
            depth.add_metric([state], n)
        yield depth
        age = oldest and max(0.0, time.time() - oldest)
        yield GaugeMetricFamily(
            f"{NS}_outbox_oldest_pending_age_seconds",
            "Age of the oldest message not delivered yet: a pending webhook, or a queued,"
            " retrying or sending item (0 when none).", value=age or 0.0,
        )  # fmt: skip
        if self.paused is None:
            return
        pause = self.paused()
        paused = GaugeMetricFamily(
            f"{NS}_sending_paused",
            "1 while sending is paused because DingTalk fails for everyone, with the reason.",
            labels=["reason"],
        )
        paused.add_metric([pause[0] if pause else ""], 1 if pause else 0)
        yield paused
        yield GaugeMetricFamily(
            f"{NS}_sending_paused_seconds", "How long sending has been paused (0 when it is not).",
            value=max(0.0, time.time() - pause[1]) if pause else 0.0,
        )  # fmt: skip


class _DefaultRegistry(Collector):
    def collect(self) -> Iterator[Metric]:
        from prometheus_client import REGISTRY

        yield from REGISTRY.collect()


def exposition(extra: Collector | None = None) -> tuple[bytes, str]:
    """The text for GET /metrics: a fresh registry per scrape, so threads never share one."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_DefaultRegistry())
    if extra is not None:
        registry.register(extra)
    return generate_latest(registry), CONTENT_TYPE_LATEST
