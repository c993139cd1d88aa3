"""Settings come from the environment (DESIGN.md, Settings); `serve` flags override them."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receiver.envcheck import (
    ReadRecorder,
    check_basic_auth,
    check_listen,
    check_token,
    check_url,
    webhook_token,
)

DEFAULT_API_BASE = "https://oapi.dingtalk.com/"
LANGUAGES = ("zh", "en")  # RECEIVER_LANGUAGE; receiver.messages.filters has the words of each
LOG_FORMATS = ("text", "json")
MAX_DELIVERY_PROCESSES = 16  # RECEIVER_DELIVERY_PROCESSES: more only contend for the store


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `5m`, `24h`, `7d` -> seconds."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:], None)
    number = raw[:-1] if unit else raw
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (like 90s, 5m, 24h, 7d)") from None
    if not math.isfinite(value):  # float() takes "inf" and "nan"; no timer or sleep does
        raise ValueError(f"{text!r} is not a duration (like 90s, 5m, 24h, 7d)")
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_duration(raw)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def _float(env: Mapping[str, str], name: str, default: float, *, positive: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}={raw!r} is not a finite number")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name}={raw!r} must be {'positive' if positive else 'zero or more'}")
    return value


@dataclass(frozen=True)
class Settings:
    app_key: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    agent_id: str | None = None
    proxy: str | None = None
    api_base: str = DEFAULT_API_BASE
    routing: str = "routing.yaml"
    templates: str = "templates"
    data_dir: str = "data"
    listen: str = "127.0.0.1:8080"
    listen_from: str = field(default="RECEIVER_LISTEN", compare=False)  # or --listen
    workers: int = 2
    webhook_token: str | None = field(default=None, repr=False)
    basic_auth: str | None = field(default=None, repr=False)
    grafana_hmac_secret: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    timezone: str = "Asia/Shanghai"
    language: str = "zh"  # zh | en: the words in messages
    external_url: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    console_token: str | None = field(default=None, repr=False)
    alertmanager_url: str | None = None  # where "acknowledge and silence" creates silences
    ack_ttl: float = 24 * 3600.0  # how long an acknowledge link works
    max_body_bytes: int = 16_777_216  # a 10,000-alert group is about 6 MB (docs/operations.md)
    read_timeout: float = 30.0  # to read a request's headers and body, else 408
    reload_settle: float = 2.0  # routing.yaml must be unchanged this long before it loads
    max_message_bytes: int = 2048
    http_timeout: float = 10.0
    directory_sync_interval: float = 6 * 3600.0  # seconds; 0 turns the periodic sync off
    directory_qps: float = 5.0  # DingTalk calls per second during a sync; 0 = unthrottled
    log_format: str = "text"
    # delivery (docs/delivery.md)
    give_up_after: float = 24 * 3600.0
    backoff_min: float = 1.0
    backoff_max: float = 300.0
    send_rate: float = 10.0
    recipients_per_minute: int = 5000
    user_daily_limit: int = 500
    followup_delay: float = 60.0
    retention: float = 7 * 86400.0
    robot_per_minute: int = 18  # posts a minute per group robot; DingTalk blocks over 20
    database_url: str | None = field(default=None, repr=False)  # postgresql://…; None: SQLite
    dedup_window: float = 300.0  # seconds a repeated notification is accepted, not stored; 0: off
    commit_batch: int = 256  # webhooks a worker commits at most in one transaction (one fsync)
    delivery_processes: int = 1  # each plans its share of the groups (receiver.delivery.shards)

    # what from_env found set but never read: a misspelt DINGTALK_*/RECEIVER_* variable
    unknown: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise ValueError(
                f"RECEIVER_LOG_FORMAT={self.log_format!r}: expected one of {', '.join(LOG_FORMATS)}"
            )
        # What a web worker or the delivery process would otherwise fail on only once
        # gunicorn runs them: a traceback per worker boot, or a restart every second.
        if self.workers < 1:
            raise ValueError(f"RECEIVER_WORKERS / --workers={self.workers}: must be at least 1")
        if not 1 <= self.delivery_processes <= MAX_DELIVERY_PROCESSES:
            raise ValueError(
                f"RECEIVER_DELIVERY_PROCESSES={self.delivery_processes}: must be"
                f" 1..{MAX_DELIVERY_PROCESSES}"
            )
        if not 1 <= self.robot_per_minute <= 20:
            raise ValueError(
                f"RECEIVER_ROBOT_PER_MINUTE={self.robot_per_minute}: must be 1..20"
                " (DingTalk blocks a robot for 10 minutes over 20 posts a minute)"
            )
        for name, seconds, zero in (
            ("RECEIVER_READ_TIMEOUT", self.read_timeout, "every request would get a 408"),
            ("RECEIVER_HTTP_TIMEOUT", self.http_timeout, "every DingTalk call would time out"),
            ("RECEIVER_GIVE_UP_AFTER", self.give_up_after, "an item would die at its first retry"),
            ("RECEIVER_RETRY_BACKOFF_MIN", self.backoff_min, "retries would not wait"),
            ("RECEIVER_RETENTION", self.retention, "a message would be purged as it is sent"),
            ("RECEIVER_ACK_TTL", self.ack_ttl, "no acknowledge link would work"),
        ):
            if seconds <= 0:
                raise ValueError(f"{name}={seconds:g}s: must be more than 0 ({zero})")
        if self.backoff_max < self.backoff_min:
            raise ValueError(
                f"RECEIVER_RETRY_BACKOFF_MAX={self.backoff_max:g}s is below"
                f" RECEIVER_RETRY_BACKOFF_MIN={self.backoff_min:g}s"
            )
        if self.language not in LANGUAGES:
            raise ValueError(
                f"RECEIVER_LANGUAGE={self.language!r}: expected one of {', '.join(LANGUAGES)}"
            )
        if self.console_token and not self.secret_key:
            raise ValueError(
                "RECEIVER_CONSOLE_TOKEN is set: RECEIVER_SECRET_KEY is required too"
                " (it signs console sessions; the same on every replica)"
            )
        if self.external_url and not self.secret_key:
            raise ValueError(
                "RECEIVER_SECRET_KEY is required once RECEIVER_EXTERNAL_URL is set:"
                " it signs the acknowledge links"
            )
        check_listen(self.listen, self.listen_from)
        if self.agent_id is not None and not self.agent_id.isdigit():
            raise ValueError(
                f"DINGTALK_APP_AGENT_ID={self.agent_id!r} is not a number: it is the app's"
                " AgentId, digits only (like 2987654321)"
            )
        check_token(self.webhook_token)
        check_basic_auth(self.basic_auth)
        for name, url in (("DINGTALK_API_BASE", self.api_base), ("DINGTALK_PROXY", self.proxy),
                          ("RECEIVER_EXTERNAL_URL", self.external_url),
                          ("ALERTMANAGER_URL", self.alertmanager_url)):  # fmt: skip
            check_url(name, url)
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("RECEIVER_DATABASE_URL must be a postgresql:// URL")  # not echoed
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"RECEIVER_TIMEZONE={self.timezone!r} is not a known time zone"
                " (like Asia/Shanghai or UTC)"
            ) from None

    @property
    def dry_run(self) -> bool:
        """True unless all three DingTalk credentials are set."""
        return not (self.app_key and self.app_secret and self.agent_id)

    def missing_credentials(self) -> str:
        """Which DingTalk variables are unset, with the misspelt ones that were meant."""
        names = ("DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGTALK_APP_AGENT_ID")
        values = (self.app_key, self.app_secret, self.agent_id)
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        hints = [u for u in self.unknown if any(u.endswith(f"mean {n}?") for n in missing)]
        text = ", ".join(missing) + (" is" if len(missing) == 1 else " are") + " not set"
        return text + "".join(f" ({h})" for h in hints)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = ReadRecorder(os.environ if env is None else env)

        def s(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        values: dict[str, Any] = {
            "app_key": s("DINGTALK_APP_KEY"),
            "app_secret": s("DINGTALK_APP_SECRET"),
            "agent_id": s("DINGTALK_APP_AGENT_ID"),
            "proxy": s("DINGTALK_PROXY"),
            "api_base": s("DINGTALK_API_BASE") or DEFAULT_API_BASE,
            "routing": s("RECEIVER_ROUTING") or "routing.yaml",
            "templates": s("RECEIVER_TEMPLATES") or "templates",
            "data_dir": s("RECEIVER_DATA_DIR") or "data",
            "listen": s("RECEIVER_LISTEN") or "127.0.0.1:8080",
            "workers": _int(env, "RECEIVER_WORKERS", 2, minimum=1),
            "webhook_token": webhook_token(env),
            "basic_auth": s("RECEIVER_BASIC_AUTH"),
            "grafana_hmac_secret": s("RECEIVER_GRAFANA_HMAC_SECRET"),
            "admin_token": s("RECEIVER_ADMIN_TOKEN"),
            "timezone": s("RECEIVER_TIMEZONE") or "Asia/Shanghai",
            "language": s("RECEIVER_LANGUAGE") or "zh",
            "external_url": s("RECEIVER_EXTERNAL_URL"),
            "secret_key": s("RECEIVER_SECRET_KEY"),
            "console_token": s("RECEIVER_CONSOLE_TOKEN"),
            "alertmanager_url": s("ALERTMANAGER_URL"),
            "ack_ttl": _duration(env, "RECEIVER_ACK_TTL", 24 * 3600.0),
            "max_body_bytes": _int(env, "RECEIVER_MAX_BODY_BYTES", 16_777_216, minimum=1),
            "read_timeout": _duration(env, "RECEIVER_READ_TIMEOUT", 30.0),
            "reload_settle": _duration(env, "RECEIVER_RELOAD_SETTLE", 2.0),
            "max_message_bytes": _int(env, "RECEIVER_MAX_MESSAGE_BYTES", 2048, minimum=1),
            "directory_sync_interval": _duration(
                env, "RECEIVER_DIRECTORY_SYNC_INTERVAL", 6 * 3600.0
            ),
            "directory_qps": _float(env, "RECEIVER_DIRECTORY_QPS", 5.0),
            "log_format": (s("RECEIVER_LOG_FORMAT") or "text").lower(),
            "http_timeout": _duration(env, "RECEIVER_HTTP_TIMEOUT", 10.0),
            "give_up_after": _duration(env, "RECEIVER_GIVE_UP_AFTER", 24 * 3600.0),
            "backoff_min": _duration(env, "RECEIVER_RETRY_BACKOFF_MIN", 1.0),
            "backoff_max": _duration(env, "RECEIVER_RETRY_BACKOFF_MAX", 300.0),
            "send_rate": _float(env, "RECEIVER_SEND_RATE", 10.0, positive=True),
            "recipients_per_minute": _int(env, "RECEIVER_RECIPIENTS_PER_MINUTE", 5000, minimum=1),
            "user_daily_limit": _int(env, "RECEIVER_USER_DAILY_LIMIT", 500, minimum=1),
            "followup_delay": _duration(env, "RECEIVER_FOLLOWUP_DELAY", 60.0),
            "retention": _duration(env, "RECEIVER_RETENTION", 7 * 86400.0),
            "robot_per_minute": _int(env, "RECEIVER_ROBOT_PER_MINUTE", 18, minimum=1),
            "dedup_window": _duration(env, "RECEIVER_DEDUP_WINDOW", 300.0),
            "commit_batch": _int(env, "RECEIVER_COMMIT_BATCH", 256, minimum=1),
            "delivery_processes": _int(env, "RECEIVER_DELIVERY_PROCESSES", 1, minimum=1),
            "database_url": s("RECEIVER_DATABASE_URL"),
        }
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known and v is not None})
        if overrides.get("listen") is not None:
            values["listen_from"] = "--listen"
        return cls(**values, unknown=tuple(env.unknown()))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)
