"""Logging set-up for `serve`, the delivery process and the CLI.

Two formats, chosen by RECEIVER_LOG_FORMAT:

- `text` (the default): one human line, `TIME LEVEL LOGGER event key=value ...`;
- `json`: one JSON object a line, with `ts`, `level`, `logger`, `event`, the ids
  and other fields of the event, `process` (the pid that logged it) and `msg`,
  the same text as the plain line.

Log calls stay plain `log.info("sent id=%d receiver=%s", ...)`. The first word of
the template is the event name, and each `key=%x` in it becomes a field that
keeps its type (an id stays an int, a list of ids stays a list). Fields passed
with `extra=` are kept too. Only the values the template names are read, so
arguments that a template does not print (gunicorn passes every request header
to its access log) never reach the output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")
ENV = "RECEIVER_LOG_FORMAT"

# gunicorn's access log: the path without the query string, so nothing in a URL leaks.
ACCESS_LOG_FORMAT = (
    "access remote=%(h)s method=%(m)s path=%(U)s status=%(s)s bytes=%(B)s duration_ms=%(M)s"
)

_EVENT = re.compile(r"[a-z][a-z0-9_]*(?=[\s:;]|$)")
_CONVERSION = re.compile(
    r"(?:(?P<key>\w+)=\"?)?%(?:\((?P<name>[^)]+)\))?[-#0 +]*(?P<width>\*|\d+)?"
    r"(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _plain(value: Any) -> Any:
    """A JSON-native copy of value, or its str()."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def fields(record: logging.LogRecord) -> tuple[str | None, dict[str, Any]]:
    """The event name and the `key=%x` fields of a record's template, with their values."""
    template = record.msg if isinstance(record.msg, str) else ""
    match = _EVENT.match(template)
    event = match.group(0) if match else None
    args = record.args
    out: dict[str, Any] = {}
    position = 0
    for m in _CONVERSION.finditer(template):
        if m.group("conv") == "%":
            continue
        if m.group("width") == "*" or m.group("prec") == "*":
            return event, {}  # rare enough that we don't chase the extra arguments
        if m.group("name") is not None:
            if not isinstance(args, Mapping) or m.group("name") not in args:
                return event, {}
            value = args[m.group("name")]
        else:
            if not isinstance(args, tuple) or position >= len(args):
                return event, {}
            value = args[position]
            position += 1
        key = m.group("key")
        if key is None:
            continue
        conv = m.group("conv")
        if conv in "di" and isinstance(value, int | float):
            out[key] = int(value)
        elif conv in "eEfFgG" and isinstance(value, int | float):
            out[key] = float(m.group(0)[len(key) + 1 :].lstrip('"') % value)
        elif isinstance(value, str) and value.isdigit() and record.name == "gunicorn.access":
            out[key] = int(value)
        else:
            out[key] = _plain(value)
    if isinstance(args, tuple) and position != len(args):
        return event, {}
    return event, out


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, event, the template's fields, msg."""

    def format(self, record: logging.LogRecord) -> str:
        event, found = fields(record)
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if event:
            line["event"] = event
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = _plain(value)
        for key, value in found.items():
            line.setdefault(key, value)
        line["process"] = record.process  # the emitting process; a `pid=` field is kept
        line["msg"] = record.getMessage()
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def formatter(fmt: str = "text") -> logging.Formatter:
    """The formatter for RECEIVER_LOG_FORMAT; also the factory in gunicorn's logconfig_dict."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(FORMAT)
    raise ValueError(f"{ENV}={fmt!r}: expected one of {', '.join(FORMATS)}")


def logconfig_dict(fmt: str, level: str = "INFO") -> dict[str, Any]:
    """gunicorn's logging config: its error and access logs go through our formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"receiver": {"()": "receiver.logs.formatter", "fmt": fmt}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "receiver",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": level, "handlers": [], "propagate": True},
        },
    }


def setup_logging(level: int = logging.INFO, fmt: str | None = None) -> None:
    """Log to stderr in `fmt`; by default RECEIVER_LOG_FORMAT, so child processes agree."""
    root = logging.getLogger()
    if any(getattr(h, "_receiver", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt or os.environ.get(ENV, "").strip().lower() or "text"))
    handler._receiver = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
