"""Checks on the environment that `Settings.from_env` runs before anything starts.

- a misspelt variable (`DINGTALK_AGENT_ID`) is named, with the one it was meant to be;
- `RECEIVER_LISTEN` / `--listen` must be HOST:PORT (or unix:PATH), as gunicorn binds it;
- the webhook token may come from a file (`RECEIVER_WEBHOOK_TOKEN_FILE`, for Docker
  secrets); a file that is set but unreadable or empty stops the start, as does the
  placeholder token shipped in examples/, so that auth never silently falls off.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

PREFIXES = ("DINGTALK_", "RECEIVER_")
# Read by something other than Settings: the test suite's own switch.
NOT_SETTINGS = frozenset({"RECEIVER_REQUIRE_E2E"})
# The token examples/webhook-token ships with: a deployment that kept it has no auth.
PLACEHOLDER_TOKENS = frozenset({"change-me-to-a-long-random-string"})


class ReadRecorder(Mapping[str, str]):
    """The environment, remembering which names were asked for."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.env[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.env.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)

    def unknown(self) -> list[str]:
        """One line per DINGTALK_*/RECEIVER_* variable that is set but no setting reads."""
        lines = []
        for name in sorted(self.env):
            if not name.startswith(PREFIXES) or name in self.read or name in NOT_SETTINGS:
                continue
            close = difflib.get_close_matches(name, sorted(self.read), n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]}?" if close else ""
            lines.append(f"{name} is set but is not a setting{hint}")
        return lines


def check_listen(listen: str, name: str) -> None:
    """HOST:PORT ([::1]:PORT for IPv6) or unix:PATH, as gunicorn's bind takes it."""
    if listen.startswith("unix:"):
        return
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{name}={listen!r}: expected HOST:PORT, like 127.0.0.1:8080 or 0.0.0.0:8080"
        )


URL_SETTINGS = {  # variable: the schemes it takes
    "DINGTALK_API_BASE": ("http", "https"),
    "DINGTALK_PROXY": ("http", "https", "socks5", "socks5h"),
    "RECEIVER_EXTERNAL_URL": ("http", "https"),
    "ALERTMANAGER_URL": ("http", "https"),
}


def check_url(name: str, value: str | None) -> None:
    """A URL setting with a scheme and a host: `localhost:9093` alone is refused by name."""
    if not value:
        return
    schemes = URL_SETTINGS[name]
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        example = (
            "http://proxy.example:3128" if name == "DINGTALK_PROXY" else "https://host[:port]/"
        )
        shown = repr(value) if "@" not in value else "(not shown: it holds credentials)"
        raise ValueError(f"{name}={shown}: expected a URL like {example}")


def check_basic_auth(value: str | None) -> None:
    if value is not None and ":" not in value:
        raise ValueError("RECEIVER_BASIC_AUTH: expected user:password")


def check_token(token: str | None) -> None:
    if token is not None and token in PLACEHOLDER_TOKENS:
        raise ValueError(
            "RECEIVER_WEBHOOK_TOKEN is the placeholder from examples/webhook-token;"
            " generate one: openssl rand -hex 32 > webhook-token"
        )


def webhook_token(env: Mapping[str, str]) -> str | None:
    """RECEIVER_WEBHOOK_TOKEN, or the contents of RECEIVER_WEBHOOK_TOKEN_FILE."""
    direct = env.get("RECEIVER_WEBHOOK_TOKEN", "").strip() or None
    path = env.get("RECEIVER_WEBHOOK_TOKEN_FILE", "").strip()
    if not path:
        return direct
    if direct is not None:
        raise ValueError("set RECEIVER_WEBHOOK_TOKEN or RECEIVER_WEBHOOK_TOKEN_FILE, not both")
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise ValueError(f"RECEIVER_WEBHOOK_TOKEN_FILE={path}: cannot read it ({reason})") from None
    if not token:
        raise ValueError(f"RECEIVER_WEBHOOK_TOKEN_FILE={path} is empty")
    return token
