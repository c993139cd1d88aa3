"""Settings come from the environment (DESIGN.md, Settings); `serve` flags override them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

DEFAULT_API_BASE = "https://oapi.dingtalk.com/"
LOG_FORMATS = ("text", "json")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} is negative")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    """Seconds from `3600`, `90s`, `30m`, `6h` or `1d`; 0 means off."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    number, unit = (raw[:-1], raw[-1]) if raw[-1] in _UNITS else (raw, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a duration such as 6h, 30m or 3600") from None
    if seconds < 0:
        raise ValueError(f"{name}={raw!r} is negative")
    return seconds


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
    workers: int = 2
    webhook_token: str | None = field(default=None, repr=False)
    basic_auth: str | None = field(default=None, repr=False)
    grafana_hmac_secret: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    timezone: str = "Asia/Shanghai"
    language: str = "zh"  # zh | en: the words in messages
    external_url: str | None = None
    max_body_bytes: int = 1_048_576
    max_message_bytes: int = 2048
    http_timeout: float = 10.0
    directory_sync_interval: float = 6 * 3600.0  # seconds; 0 turns the periodic sync off
    directory_qps: float = 20.0  # DingTalk calls per second during a sync; 0 = unthrottled
    log_format: str = "text"

    def __post_init__(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise ValueError(
                f"RECEIVER_LOG_FORMAT={self.log_format!r}: expected one of {', '.join(LOG_FORMATS)}"
            )

    @property
    def dry_run(self) -> bool:
        """True unless all three DingTalk credentials are set."""
        return not (self.app_key and self.app_secret and self.agent_id)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env

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
            "workers": _int(env, "RECEIVER_WORKERS", 2),
            "webhook_token": s("RECEIVER_WEBHOOK_TOKEN"),
            "basic_auth": s("RECEIVER_BASIC_AUTH"),
            "grafana_hmac_secret": s("RECEIVER_GRAFANA_HMAC_SECRET"),
            "admin_token": s("RECEIVER_ADMIN_TOKEN"),
            "timezone": s("RECEIVER_TIMEZONE") or "Asia/Shanghai",
            "language": s("RECEIVER_LANGUAGE") or "zh",
            "external_url": s("RECEIVER_EXTERNAL_URL"),
            "max_body_bytes": _int(env, "RECEIVER_MAX_BODY_BYTES", 1_048_576),
            "max_message_bytes": _int(env, "RECEIVER_MAX_MESSAGE_BYTES", 2048),
            "directory_sync_interval": _duration(
                env, "RECEIVER_DIRECTORY_SYNC_INTERVAL", 6 * 3600.0
            ),
            "directory_qps": _float(env, "RECEIVER_DIRECTORY_QPS", 20.0),
            "log_format": (s("RECEIVER_LOG_FORMAT") or "text").lower(),
        }
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known and v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)
