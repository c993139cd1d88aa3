"""`dingtalk-receiver ack`, `escalations`, and `outbox show`'s per-person lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from receiver.delivery.outbox import Outbox
from receiver.delivery.planner import Planner
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES

FIRING = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
ROUTING = """\
users: {bob: u-bob, carol: u-carol}
escalation_policies:
  pager:
    steps: [{after: 5m, notify: {users: [carol]}}]
receivers:
  - name: db
    users: [bob, carol]
    escalation: pager
route:
  receiver: db
"""


@pytest.fixture
def box(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outbox:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    s = settings.with_(routing=str(routing))
    monkeypatch.setenv("RECEIVER_DATA_DIR", s.data_dir)
    monkeypatch.setenv("RECEIVER_ROUTING", s.routing)
    monkeypatch.setenv("RECEIVER_TEMPLATES", s.templates)
    app = create_app(s)
    assert app.test_client().post("/alertmanager", json=FIRING).status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    return Outbox(s.data_dir)


def run(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(argv))
    return result.exit_code, result.output


def test_escalations_then_ack_from_the_terminal(box: Outbox) -> None:
    code, out = run("escalations")
    assert code == 0
    (esc,) = box.escalations()
    assert f"receiver=db policy=pager step=0 notification={esc.notification_id}" in out
    assert "next step due" in out and FIRING["groupKey"] in out

    code, out = run("ack", str(esc.notification_id), "--as", "u-carol")
    assert (code, out.strip()) == (0, "acknowledged by u-carol (u-carol): db")
    assert run("escalations") == (0, "no active escalations\n")
    code, out = run("escalations", "--all")
    assert " acked " in out
    code, out = run("ack", str(esc.notification_id), "--as", "u-carol")
    assert (code, out.strip()) == (0, "already acknowledged by u-carol (u-carol)")


def test_ack_of_an_unknown_notification_fails(box: Outbox) -> None:
    code, out = run("ack", "999", "--as", "u-bob")
    assert code == 1 and "no notification 999" in out


def test_ack_and_silence_without_alertmanager_says_so(box: Outbox) -> None:
    (esc,) = box.escalations()
    code, out = run("ack", str(esc.notification_id), "--as", "u-bob", "--silence", "1h")
    assert code == 1
    assert "acknowledged by u-bob" in out and "ALERTMANAGER_URL is not set" in out
    assert box.escalations() == []  # the ack stands


def test_outbox_show_has_sent_read_and_acknowledged_per_person(box: Outbox) -> None:
    (item,) = box.items()
    assert item.userids == ("u-bob", "u-carol")
    box.claim()
    box.mark_sent(item.id, [1001])
    box.record_reads(item.id, ["u-bob"], time.time())
    (esc,) = box.escalations()
    run("ack", str(esc.notification_id), "--as", "u-bob")
    code, out = run("outbox", "show", str(item.id))
    assert code == 0
    lines = {x.split()[0]: x for x in out.splitlines() if x.startswith("  u-")}
    assert "sent=20" in lines["u-bob"] and "read=20" in lines["u-bob"]
    assert "acknowledged=20" in lines["u-bob"]
    assert "sent=20" in lines["u-carol"] and "read=- acknowledged=-" in lines["u-carol"]
