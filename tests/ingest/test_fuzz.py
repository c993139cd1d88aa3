"""Property: on any input the parsers return a Notification or raise PayloadError, nothing else."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.errors import PayloadError
from receiver.ingest.alertmanager import _plain_am_alert, parse_alertmanager, parse_am_alert
from receiver.ingest.grafana import parse_grafana
from receiver.model import Notification

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VALID = [
    (parse_alertmanager, json.loads((FIXTURES / "alertmanager" / n).read_bytes()))
    for n in ("firing-4.json", "mixed.json", "hostile-text.json", "truncated.json")
] + [(parse_grafana, json.loads(p.read_bytes())) for p in sorted((FIXTURES / "grafana").glob("*"))]
PARSERS = [parse_alertmanager, parse_grafana]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["firing", "resolved", "4", "1", "ok", "no_data", "0001-01-01T00:00:00Z"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def outcome(parse: Callable[[bytes], Notification], body: bytes) -> None:
    try:
        result = parse(body)
    except PayloadError as e:
        assert 400 <= e.status < 500
        assert e.path.startswith("$")
        return
    assert isinstance(result, Notification)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Callable[[bytes], Notification], bytes]:
    parse, original = draw(st.sampled_from(VALID))
    doc = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    body = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    how = draw(st.sampled_from(["as is", "truncate", "flip", "insert"]))
    if how != "as is" and body:
        at = draw(st.integers(0, len(body) - 1))
        if how == "truncate":
            body = body[:at]
        elif how == "flip":
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
        else:
            body = body[:at] + draw(st.binary(min_size=1, max_size=4)) + body[at:]
    return parse, body


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("parse", PARSERS, ids=["alertmanager", "grafana"])
@FAST
@given(value=json_values)
def test_random_json(parse: Callable[[bytes], Notification], value: Any):
    outcome(parse, json.dumps(value).encode())


@pytest.mark.parametrize("parse", PARSERS, ids=["alertmanager", "grafana"])
@FAST
@given(body=st.binary(max_size=200))
def test_random_bytes(parse: Callable[[bytes], Notification], body: bytes):
    outcome(parse, body)


@FAST
@given(case=mutated())
def test_mutations_of_valid_payloads(case: tuple[Callable[[bytes], Notification], bytes]):
    parse, body = case
    outcome(parse, body)
    # The other parser must hold up on it too.
    outcome(parse_grafana if parse is parse_alertmanager else parse_alertmanager, body)


@FAST
@given(case=mutated())
def test_a_stored_body_parses_to_what_it_did_when_it_was_accepted(
    case: tuple[Callable[[bytes], Notification], bytes],
):
    """The delivery process parses a stored body without checking its JSON again
    (`stored=True`): for every body the checked parse accepts, the same Notification."""
    parse, body = case
    try:
        accepted = parse(body)
    except PayloadError:
        return
    assert parse(body, stored=True) == accepted  # type: ignore[call-arg]


@pytest.mark.parametrize(("parse", "doc"), VALID)
def test_unmutated_fixtures_parse(parse: Callable[[bytes], Notification], doc: Any):
    assert isinstance(parse(json.dumps(doc).encode()), Notification)


timestamps = st.builds(
    lambda date, sep, time, frac, zone: f"{date}{sep}{time}{frac}{zone}",
    st.dates().map(str) | st.text("0123456789-W", max_size=10),
    st.sampled_from(["T", "t", " ", ""]),
    st.times().map(lambda t: t.strftime("%H:%M:%S")) | st.text("0123456789:", max_size=8),
    st.just("") | st.text("0123456789", min_size=1, max_size=12).map(lambda d: "." + d),
    st.sampled_from(["Z", "z", "+08:00", "-05:30", "+0800", "", " ", "Z "]),
)


@given(timestamps)
def test_the_fast_time_path_agrees_with_the_normalising_one(value: str) -> None:
    """parse_time tries datetime.fromisoformat first; it must accept and read the same."""
    from receiver.ingest.alertmanager import _parse_time_slow, parse_time

    try:
        fast: Any = parse_time(value, "$")
    except PayloadError as e:
        fast = str(e)
    try:
        slow: Any = _parse_time_slow(value, "$")
        if slow.tzinfo is None:
            slow = f"$: time without a zone: {value!r}"
    except PayloadError as e:
        slow = str(e)
    if not value or value.startswith("0001-01-01"):  # absent, or Go's zero time
        assert fast is None
    else:
        assert fast == slow


ALERT_FIELDS = ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                "fingerprint")  # fmt: skip
field_values = (
    json_values
    | st.sampled_from(["2026-11-28T10:00:00Z", "2026-11-28T10:00:00.123456789+08:00",
                       "2026-11-28T10:00:00", "9999-12-31T23:59:59Z", "", "firing"])
    | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(ALERT_FIELDS), field_values, max_size=7),
    st.dictionaries(st.text(max_size=6), json_values, max_size=2),
)
def test_the_alert_fast_path_agrees_with_the_field_by_field_check(
    fields: dict[str, Any], extra: dict[str, Any]
) -> None:
    """parse_alertmanager's fast path for an ordinary alert either declines (None), or
    returns exactly what parse_am_alert makes of it; parse_am_alert then raises nothing."""
    raw = {**extra, **fields}
    fast = _plain_am_alert(raw)
    try:
        slow = parse_am_alert(raw, "$.alerts[0]")
    except PayloadError:
        assert fast is None
        return
    assert fast is None or fast == slow


def test_the_fast_path_takes_the_alerts_that_alertmanager_sends() -> None:
    for _, payload in VALID[:4]:
        for raw in payload["alerts"]:
            assert _plain_am_alert(raw) == parse_am_alert(raw, "$")
