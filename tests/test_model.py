"""The model's hand-written Alert constructor stays the dataclass's, field for field."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from datetime import UTC, datetime

import pytest

from receiver.model import Alert


def test_alerts_init_takes_the_declared_fields_in_order_with_their_defaults() -> None:
    params = list(inspect.signature(Alert.__init__).parameters.values())[1:]
    fields = dataclasses.fields(Alert)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]
    hints = typing.get_type_hints(Alert.__init__)
    assert {f.name: hints[f.name] for f in fields} == typing.get_type_hints(Alert)


def test_an_alert_holds_what_it_was_given_and_stays_frozen() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    given: dict[str, object] = {f.name: f"v-{f.name}" for f in dataclasses.fields(Alert)}
    given |= {"labels": {"a": "1"}, "annotations": {}, "starts_at": at, "ends_at": None}
    a = Alert(**given)  # type: ignore[arg-type]
    assert vars(a) == given and list(vars(a)) == [f.name for f in dataclasses.fields(Alert)]
    assert a == Alert(**given)  # type: ignore[arg-type]
    assert a != dataclasses.replace(a, fingerprint="other")
    assert dataclasses.replace(a, status="resolved").status == "resolved"
    assert "fingerprint='v-fingerprint'" in repr(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.status = "resolved"  # type: ignore[misc]
    short = Alert("firing", {}, {}, None, None)
    assert (short.generator_url, short.values, short.rule_uid) == ("", None, "")
