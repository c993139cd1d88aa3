"""Bad input never disturbs what was accepted: a barrage through the real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.fakes.dingtalk import FakeDingTalk
from tests.procs import http, serve
from tests.test_e2e import receiver_env
from tests.web.test_bad_input import BAD_PAYLOADS

pytestmark = pytest.mark.e2e


def good(n: int) -> bytes:
    doc = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
    doc["alerts"][0]["annotations"]["summary"] = f"good alert #{n}"
    doc["groupKey"] = f'{{}}:{{n="{n}"}}'  # its own group: a newer one would replace it
    return json.dumps(doc).encode()


def test_alerts_before_and_after_a_barrage_are_all_delivered(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    env = {**receiver_env(tmp_path, fake_dingtalk), "RECEIVER_MAX_BODY_BYTES": "65536"}
    bad: list[tuple[str, bytes, dict[str, str]]] = [
        (endpoint, body, {"Content-Type": "application/json"})
        for _, endpoint, body, _ in BAD_PAYLOADS
    ]
    bad += [
        ("/alertmanager", b"[" * 100_000, {"Content-Type": "application/json"}),  # absurd nesting
        ("/alertmanager", b"x" * 70_000, {"Content-Type": "application/json"}),  # over the limit
        ("/alertmanager", good(0), {"Content-Type": "text/plain"}),
        ("/grafana", b"\xff\xfe", {"Content-Type": "application/json"}),
    ]
    with serve(env, tmp_path / "serve.log", workers=2) as srv:
        for n in range(1, 6):
            assert http("POST", srv.url + "/alertmanager", good(n))[0] == 200
        for _ in range(3):
            for endpoint, body, headers in bad:
                status, reply = http("POST", srv.url + endpoint, body, headers=headers)
                assert 400 <= status < 500, (endpoint, body[:80], status, reply)
                assert isinstance(reply, dict) and reply.get("error"), reply
        for n in range(6, 11):
            assert http("POST", srv.url + "/alertmanager", good(n))[0] == 200

        def delivered(f: FakeDingTalk) -> set[int]:
            texts = " ".join(json.dumps(r.body, ensure_ascii=False) for r in f.sends())
            return {int(n) for n in re.findall(r"good alert #(\d+)", texts)}

        assert fake_dingtalk.wait_for(lambda f: delivered(f) == set(range(1, 11)), 30), srv.text()
        assert srv.proc.poll() is None
    assert " 500 " not in srv.text() and "Traceback" not in srv.text()
