"""Decoding a webhook's JSON body, stricter than json.loads where the senders never
produce the input. Pure: bytes in, value out, PayloadError otherwise."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from receiver.errors import PayloadError

# json.loads recurses once per level, against the interpreter's recursion limit, so how
# deep it can go depends on the caller's stack: a web worker could accept what the
# delivery process, parsing the stored body again, finds "nested too deeply". A fixed
# limit far below the recursion limit gives both the same verdict.
_MAX_DEPTH = 512
_TOO_DEEP = f"JSON nested too deeply (more than {_MAX_DEPTH} levels)"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]}... is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r} in an object")
            seen.add(key)
    return obj


def decode_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body; every failure becomes a PayloadError with a position.

    Stricter than json.loads where Go's encoder (both senders) never produces the input
    and Python would let it through to crash a later stage: NaN/Infinity, numbers that
    overflow a float or exceed Python's int digit limit, duplicate keys (parsers disagree
    on which wins), and lone UTF-16 surrogates (no UTF-8 encoding exists for them).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError(f"body is not valid UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(
            text,
            parse_constant=_no_constants,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise PayloadError(_TOO_DEEP) from None
    except json.JSONDecodeError as e:
        raise PayloadError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # int digit limit, NaN, overflow, duplicate key
        reason = "a number has too many digits" if "digits" in str(e) else str(e)[:120]
        raise PayloadError(f"invalid JSON: {reason}") from None
    if text.count("[") + text.count("{") > _MAX_DEPTH and _depth(text) > _MAX_DEPTH:
        raise PayloadError(_TOO_DEEP)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _check_surrogates(value)
    return value


def decode_stored(body: bytes) -> Any:
    """A body `decode_json` accepted when it was received: the same value, without
    checking it again (half the time of a 10-alert body; the delivery process and the
    pages parse every stored body again). One that fails gets decode_json's error."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # changed on disk, say: decode_json says how
        return decode_json(body)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = str.maketrans("", "", " \t\n\r0123456789+-.eEtrufalsn,:")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _depth(text: str) -> int:
    """How deeply valid JSON text nests: its brackets outside strings, without recursion."""
    brackets = _JSON_STRING.sub("", text).translate(_NOT_A_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _check_surrogates(value: Any) -> None:
    """Find the string (or key) holding a lone surrogate; iterative, so depth is no issue."""
    stack: list[tuple[str, Any]] = [("$", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            _encodable(v, path)
        elif isinstance(v, dict):
            for k, child in v.items():
                _encodable(k, path)
                stack.append((f"{path}.{k}", child))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(v))


def _encodable(s: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError("string holds an unpaired UTF-16 surrogate", path=path) from None
