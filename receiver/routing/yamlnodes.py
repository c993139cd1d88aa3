"""Reading a YAML node tree strictly, collecting every problem with its line. Pure.

The loader composes the file into nodes (which keep their marks) instead of
loading it into dicts, so that each problem can name its line, duplicate keys
are seen, and userids such as `0123` keep their text instead of becoming ints.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from receiver.errors import ConfigProblem, not_utf8

_STR_TAGS = {"str", "int", "float"}
# Shorter values from ${VAR} are not redacted: "1" or "db" would garble every message,
# and no token or secret is that short.
SECRET_MIN_CHARS = 4


def line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _tag(node: Node) -> str:
    return str(node.tag).rsplit(":", 1)[-1]


class Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []
        self.secrets: dict[str, str] = {}  # a value taken from the environment -> its ${VAR}

    def secret(self, name: str, value: str) -> None:
        """Remember a value from `${name}`: no problem or warning will print it."""
        if len(value) >= SECRET_MIN_CHARS:
            self.secrets[value] = "${" + name + "}"

    def redact(self, message: str) -> str:
        for value in sorted(self.secrets, key=len, reverse=True):  # the longest first
            message = message.replace(value, self.secrets[value])
        return message

    def error(self, node: Node | int, message: str) -> None:
        at = node if isinstance(node, int) else line(node)
        self.problems.append(ConfigProblem(self.path, at, self.redact(message)))

    def warn(self, node: Node | int, message: str) -> None:
        at = node if isinstance(node, int) else line(node)
        self.warnings.append(ConfigProblem(self.path, at, f"warning: {self.redact(message)}"))

    def mapping(
        self, node: Node, what: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Node] | None:
        """The keys of a mapping; unknown, duplicate and missing keys are reported."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping")
            return None
        allowed = list(allowed)
        out: dict[str, Node] = {}
        for k, v in node.value:
            key = str(k.value) if isinstance(k, ScalarNode) else "?"
            if key in out:
                self.error(k, f"duplicate key {key!r} in {what}")
            elif key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                tip = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(allowed)})"
                self.error(k, f"unknown key {key!r} in {what}{tip}")
            else:
                out[key] = v
        for key in required:
            if key not in out and key in allowed:
                self.error(node, f"{what} needs {key!r}")
        return out

    def pairs(self, node: Node, what: str) -> list[tuple[str, Node, Node]]:
        """A mapping with free-form keys (names); duplicate names are reported."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping")
            return []
        seen: set[str] = set()
        out = []
        for k, v in node.value:
            key = self.text(k, f"a name in {what}")
            if key is None:
                continue
            if key in seen:
                self.error(k, f"duplicate name {key!r} in {what}")
                continue
            seen.add(key)
            out.append((key, k, v))
        return out

    def seq(self, node: Node, what: str) -> list[Node]:
        if isinstance(node, ScalarNode) and _tag(node) == "null":
            return []
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what} must be a list")
            return []
        return list(node.value)

    def text(self, node: Node, what: str, *, empty: bool = False) -> str | None:
        """A scalar as the text written (so `0123` stays "0123")."""
        if not isinstance(node, ScalarNode) or _tag(node) not in _STR_TAGS:
            self.error(node, f"{what} must be a string")
            return None
        if not empty and node.value == "":
            self.error(node, f"{what} must not be empty")
            return None
        return str(node.value)

    def texts(self, node: Node, what: str) -> list[tuple[str, Node]]:
        out = []
        for item in self.seq(node, what):
            value = self.text(item, f"each of {what}")
            if value is not None:
                out.append((value, item))
        return out

    def boolean(self, node: Node, what: str) -> bool | None:
        value = construct(node)
        if not isinstance(value, bool):
            self.error(node, f"{what} must be true or false")
            return None
        return value

    def integer(self, node: Node, what: str) -> int | None:
        value = construct(node)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.error(node, f"{what} must be a positive integer")
            return None
        return value

    def date(self, node: Node, what: str) -> date | None:
        value = construct(node)
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.error(node, f"{what} must be a date such as 2026-11-30")
            return None


_constructor = yaml.SafeLoader("")


def construct(node: Node) -> Any:
    """The Python value PyYAML's safe loader would give for this node.

    A node it cannot build (a list used as a mapping key) is returned as the node,
    which no caller's type check accepts, so it is reported at its line.
    """
    try:
        return _constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError:
        return node
    finally:
        _constructor.constructed_objects.clear()
        _constructor.recursive_objects.clear()


def as_written(node: Node) -> Any:
    """Like `construct`, but a number is the text written: Alertmanager's go-yaml reads
    `17:00` and `1:5` into its string fields as written, not as YAML 1.1 base-60 ints."""
    if isinstance(node, ScalarNode) and _tag(node) in ("int", "float"):
        return str(node.value)
    if isinstance(node, SequenceNode):
        return [as_written(n) for n in node.value]
    if isinstance(node, MappingNode):
        return {(k.value if isinstance(k, ScalarNode) else k): as_written(v) for k, v in node.value}
    return construct(node)


def compose(path: str, reader: Reader) -> Node | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        return yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
    except OSError as e:
        reader.error(0, f"cannot read: {e.strerror}")
    except UnicodeDecodeError as e:
        reader.problems.append(not_utf8(path, raw, e))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reader.error(mark.line + 1 if mark else 0, f"invalid YAML: {e.problem or e}")
    except yaml.YAMLError as e:
        reader.error(0, f"invalid YAML: {e}")
    return None
