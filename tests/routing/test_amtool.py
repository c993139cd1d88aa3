"""Our route tree agrees with `amtool config routes test` (Alertmanager 0.25) on the same tree.

The Alertmanager config is built from the loaded tree (webhook receivers on a dummy
loopback URL), and each label set is routed by both. amtool ignores time intervals,
so the comparison uses `match(labels, now=None)`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.routing import load_routing
from receiver.routing.matchers import quote
from receiver.routing.table import Route, RoutingTable

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
ROOT = Path(__file__).resolve().parents[2]

if not os.access(AMTOOL, os.X_OK):
    if os.environ.get("RECEIVER_REQUIRE_E2E") == "1":
        pytest.fail("amtool is required (RECEIVER_REQUIRE_E2E=1) but missing", pytrace=False)
    pytest.skip("amtool not installed", allow_module_level=True)

TRICKY = """
receivers:
  - {name: root}
  - {name: a}
  - {name: b}
  - {name: c}
  - {name: d}
  - {name: e}
route:
  receiver: root
  routes:
    - matchers: ['team="db"']
      receiver: a
      continue: true
      routes:
        - matchers: ['severity=~"crit.*|page"']
          receiver: b
        - matchers: ['severity!~"info|"']
          receiver: c
          continue: true
        - matchers: ['env=""']
          receiver: d
    - matchers: ['{team=~"db|web", env!="prod",}']
      receiver: e
      continue: true
    - match: {team: web}
      match_re: {severity: "warn|crit"}
      receiver: b
    - matchers: ['msg="a,b"', 'team!="db"']
      receiver: c
    - matchers: ['env=~"prod|staging"']
      routes:
        - matchers: ['severity="critical"']
          receiver: d
          continue: true
        - matchers: ['severity=~".*"']
          receiver: a
"""

VALUES = {
    "team": [None, "db", "web", "dbx"],
    "severity": [None, "critical", "page", "info", "warn"],
    "env": [None, "prod", "staging"],
}


def label_sets() -> list[dict[str, str]]:
    sets = []
    for combo in itertools.product(*VALUES.values()):
        sets.append({k: v for k, v in zip(VALUES, combo, strict=True) if v is not None})
    sets += [{"msg": "a,b"}, {"msg": "a,b", "team": "db"}, {"msg": 'say "hi"', "team": "web"}]
    return sets


def am_route(r: Route, root: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"receiver": r.receiver}
    if not root:
        out["matchers"] = [str(m) for m in r.matchers]
        out["continue"] = r.continue_
    if r.routes:
        out["routes"] = [am_route(c) for c in r.routes]
    return out


def am_config(table: RoutingTable) -> dict[str, Any]:
    url = "http://127.0.0.1:9/"
    return {
        "route": am_route(table.route, root=True),
        "receivers": [{"name": n, "webhook_configs": [{"url": url}]} for n in table.receivers],
    }


def amtool_routes(config: Path, labels: dict[str, str]) -> list[str]:
    args = [f"{k}={quote(v)}" for k, v in labels.items()] or ["nolabel="]
    out = subprocess.run(
        [AMTOOL, "config", "routes", "test", f"--config.file={config}", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return out.stdout.strip().split(",")


@pytest.mark.parametrize("source", ["tricky", "bundled"])
def test_agrees_with_amtool(source: str, tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(TRICKY if source == "tricky" else (ROOT / "routing.yaml").read_text())
    table = load_routing(str(routing))
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(am_config(table)))
    cases = label_sets()
    if source == "bundled":
        extra = [
            {"cluster": c, "severity": s, "team": t}
            for c in ("prod-1", "dev")
            for s in ("info", "critical")
            for t in ("db", "web")
        ]
        cases += extra + [{"env": "staging", "alertname": "Watchdog"}, {"alertname": "Watchdog"}]
    assert len(cases) >= 50
    with ThreadPoolExecutor(max_workers=8) as pool:
        theirs = list(pool.map(lambda labels: amtool_routes(config, labels), cases))
    # amtool names a receiver once per matched route; match() de-duplicates.
    routes = [[r.receiver for r in table.routes(labels)] for labels in cases]
    assert [(c, r) for c, r, t in zip(cases, routes, theirs, strict=True) if r != t] == []
    names = [table.match(labels, None) for labels in cases]
    want = [list(dict.fromkeys(t)) for t in theirs]
    assert [(c, n) for c, n, w in zip(cases, names, want, strict=True) if n != w] == []
    assert any(len(t) > 1 for t in theirs)  # the table exercises continue


def test_amtool_accepts_bundled_intervals(tmp_path: Path) -> None:
    """The bundled time_intervals are valid Alertmanager syntax too."""
    raw = yaml.safe_load((ROOT / "routing.yaml").read_text())
    table = load_routing(str(ROOT / "routing.yaml"))
    config = am_config(table) | {"time_intervals": raw["time_intervals"]}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    out = subprocess.run(
        [AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stdout + out.stderr


# The same route tree is valid in routing.yaml and in alertmanager.yml.
INHERIT = """
route:
  receiver: root
  routes:
    - matchers: ['team="db"']
      receiver: db
      routes:
        - matchers: ['severity="critical"']
          receiver: ""
          continue: true
        - matchers: ['severity=~"critical|page"']
          receiver:
    - matchers: ['team="web"']
      receiver: ''
      routes:
        - matchers: ['env="prod"']
          receiver: web
"""


def test_an_empty_child_receiver_inherits_as_in_alertmanager(tmp_path: Path) -> None:
    """`receiver: ""` (or `receiver:` with no value) on a child route is its parent's."""
    am = tmp_path / "alertmanager.yml"
    am.write_text(INHERIT + "receivers: [{name: root}, {name: db}, {name: web}]\n")
    check = subprocess.run([AMTOOL, "check-config", str(am)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    ours = tmp_path / "routing.yaml"
    ours.write_text(INHERIT + "receivers: [{name: root}, {name: db}, {name: web}]\n")
    table = load_routing(str(ours))
    cases = [
        {"team": "db", "severity": "critical"},
        {"team": "db", "severity": "page"},
        {"team": "web"},
        {"team": "web", "env": "prod"},
        {},
    ]
    theirs = [amtool_routes(am, labels) for labels in cases]
    assert [[r.receiver for r in table.routes(labels)] for labels in cases] == theirs
    assert theirs == [["db", "db"], ["db"], ["root"], ["web"], ["root"]]


def test_location_local_is_accepted_by_both(tmp_path: Path) -> None:
    """amtool can't evaluate intervals, but says `location: Local` is valid; so do we.
    (What Local means at an instant: tests/test_routing_timeintervals.py.)"""
    intervals = (
        "time_intervals:\n"
        "  - name: office\n"
        "    time_intervals:\n"
        "      - times: [{start_time: '09:00', end_time: '17:00'}]\n"
        "        location: Local\n"
    )
    route = "route:\n  receiver: root\n  routes:\n    - {mute_time_intervals: [office]}\n"
    am = tmp_path / "alertmanager.yml"
    am.write_text(intervals + route + "receivers: [{name: root}]\n")
    check = subprocess.run([AMTOOL, "check-config", str(am)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    ours = tmp_path / "routing.yaml"
    ours.write_text(am.read_text())
    assert load_routing(str(ours)).routes({}) != []
