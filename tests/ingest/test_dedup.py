"""The key two posts of one notification share, and what makes it differ."""

from __future__ import annotations

import json
from typing import Any

from receiver.ingest.alertmanager import parse_alertmanager
from receiver.ingest.dedup import dedup_key
from tests.conftest import FIXTURES

FOUR = json.loads((FIXTURES / "alertmanager/firing-4.json").read_text())


def key(payload: dict[str, Any], url_receiver: str | None = None) -> str:
    return dedup_key(parse_alertmanager(json.dumps(payload).encode()), url_receiver)


def changed(**top: Any) -> dict[str, Any]:
    return {**FOUR, **top}


def test_the_same_notification_from_two_peers_has_one_key() -> None:
    # A peer's payload differs in what the key leaves out: the order of the alerts,
    # its externalURL, the truncation count.
    other = changed(alerts=list(reversed(FOUR["alerts"])), externalURL="http://am-2:9093")
    assert key(FOUR) == key(other)


def test_what_makes_a_different_notification() -> None:
    first = FOUR["alerts"][0]
    variants = {
        "status": changed(status="resolved"),
        "receiver": changed(receiver="other"),
        "groupKey": changed(groupKey='{}:{alertname="Other"}'),
        "one alert fewer": changed(alerts=FOUR["alerts"][1:]),
        "an alert resolved": changed(
            alerts=[
                {**first, "status": "resolved", "endsAt": "2026-12-01T10:05:00Z"},
                *FOUR["alerts"][1:],
            ]
        ),  # fmt: skip
        "a new startsAt": changed(
            alerts=[{**first, "startsAt": "2026-12-01T11:00:00Z"}, *FOUR["alerts"][1:]]
        ),
        "another fingerprint": changed(
            alerts=[{**first, "fingerprint": "0123456789abcdef"}, *FOUR["alerts"][1:]]
        ),
    }
    keys = {name: key(p) for name, p in variants.items()}
    assert key(FOUR) not in keys.values()
    assert len(set(keys.values())) == len(keys)
    assert key(FOUR, "db") != key(FOUR, "ops") != key(FOUR)  # /alertmanager/<receiver>
