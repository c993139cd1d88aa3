"""serve's access line: its six atoms made alone, the line as gunicorn's own logger writes it."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from receiver.logs import ACCESS_LOG_FORMAT, formatter
from receiver.settings import Settings
from receiver.web.accesslog import LEAN, Logger, names
from receiver.web.server import ReceiverServer


class Resp:
    def __init__(self, status: Any, sent: int | None) -> None:
        self.status, self.sent = status, sent
        self.headers = [("Content-Type", "application/json"), ("Content-Length", "44")]


class Req:
    headers = [("HOST", "127.0.0.1:9"), ("AUTHORIZATION", "Bearer s3cret"), ("USER-AGENT", "wrk")]


def environ(path: str = "/alertmanager") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST", "RAW_URI": path + "?a=1", "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": path, "QUERY_STRING": "a=1", "REMOTE_ADDR": "10.0.0.7",
        "HTTP_AUTHORIZATION": "Bearer s3cret", "wsgi.url_scheme": "http",
    }  # fmt: skip


CASES = [
    (Resp("200 OK", 44), environ(), timedelta(microseconds=1999)),
    (Resp(503, None), environ('/grafana/a"b'), timedelta(seconds=2, microseconds=7)),
    (Resp("415 UNSUPPORTED MEDIA TYPE", 0), {"REQUEST_METHOD": "PUT", "RAW_URI": "/",
      "SERVER_PROTOCOL": "HTTP/1.0"}, timedelta(0)),
]  # fmt: skip


def config(fmt: str) -> Config:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    return cfg


def lines(kind: type[glogging.Logger], fmt: str) -> list[dict[str, Any]]:
    """The access lines a logger of `kind` writes for CASES, in JSON, less ts and pid."""
    logger, out = kind(config(fmt)), io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter("json"))
    logger.access_log.handlers = [handler]
    for resp, env, took in CASES:
        logger.access(resp, Req(), env, took)
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    return [{k: v for k, v in line.items() if k not in ("ts", "process")} for line in found]


def test_the_format_names_the_lean_atoms_only() -> None:
    assert names(ACCESS_LOG_FORMAT) == LEAN
    assert names('%(h)s "%(r)s" %({user-agent}i)s') == {"h", "r", "{user-agent}i"}


@pytest.mark.parametrize("resp, env, took", CASES)
def test_each_atom_is_gunicorns(resp: Resp, env: dict[str, Any], took: timedelta) -> None:
    full = glogging.Logger(config(ACCESS_LOG_FORMAT)).atoms(resp, Req(), env, took)
    lean = Logger(config(ACCESS_LOG_FORMAT)).atoms(resp, Req(), env, took)
    assert set(lean) == LEAN
    assert lean == {k: full[k] for k in LEAN}


@pytest.mark.parametrize("fmt", [ACCESS_LOG_FORMAT, '%(h)s "%(r)s" %(s)s %({user-agent}i)s'])
def test_the_line_is_the_one_gunicorn_writes(fmt: str) -> None:
    """The same line either way; a format naming any other atom gets gunicorn's atoms."""
    ours = lines(Logger, fmt)
    assert len(ours) == len(CASES)
    assert ours == lines(glogging.Logger, fmt)
    if fmt == ACCESS_LOG_FORMAT:
        assert [line["path"] for line in ours] == ["/alertmanager", '/grafana/a\\"b', None]
        assert "s3cret" not in json.dumps(ours)
    else:
        assert ours[0]["msg"] == '10.0.0.7 "POST /alertmanager?a=1 HTTP/1.1" 200 wrk'


def test_serve_and_the_bench_baseline_use_it() -> None:
    from bench.bareflask import serve_options

    cfg = ReceiverServer(Settings.from_env({})).cfg
    assert cfg.logger_class is Logger
    assert serve_options()["logger_class"] == cfg.settings["logger_class"].get()
