"""4. Routing: a 1,000-route tree with regex matchers, 10,000 label sets, in process.

Two shapes of the same size: `nested` (50 teams, each with 19 service routes: how
a big organisation usually writes it) and `flat` (1,000 routes under the root: the
worst case for a tree walk). Each is compared with a linear scan of the same rules:
every route's matchers are evaluated for every alert, and the tree's first-match /
continue semantics are then applied to those precomputed answers. The results must
be identical; the ratio shows what the walk (and any index added later) saves.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from receiver.routing import load_routing
from receiver.routing.table import Route, RoutingTable

LABEL_SETS = 10_000
LINEAR_SETS = 2_000  # the scan is slow; its per-alert time is steady well before this
TEAMS, SERVICES = 50, 19


def _route(
    matchers: list[str], receiver: str, indent: str, cont: bool = False, routes: Sequence[str] = ()
) -> list[str]:
    quoted = ", ".join("'" + m.replace("'", "''") + "'" for m in matchers)
    lines = [f"{indent}- receiver: {receiver}", f"{indent}  matchers: [{quoted}]"]
    lines += [f"{indent}  continue: true"] if cont else []
    return lines + ([f"{indent}  routes:", *routes] if routes else [])


def _service(t: int, s: int) -> list[str]:
    return [f'service=~"svc-{t}-{s}(-canary)?|svc-{t}-{s}-[a-z]+"',
            'severity=~"critical|warning|page"', 'env!~"dev|test"']  # fmt: skip


def write_tree(path: Path, shape: str) -> Path:
    lines = ["receivers:", "  - {name: root, users: [u0]}"]
    lines += [f"  - {{name: team-{t}, users: [u{t}]}}" for t in range(TEAMS)]
    lines += ["route:", "  receiver: root", "  routes:"]
    for t in range(TEAMS):
        if shape == "nested":
            services = [
                x for s in range(SERVICES) for x in _route(_service(t, s), f"team-{t}", " " * 6)
            ]
            lines += _route([f'team=~"team-{t}|team-{t}-.*"'], f"team-{t}", "    ", routes=services)
        else:
            for s in range(SERVICES + 1):
                lines += _route([f'team="team-{t}"', *_service(t, s)], f"team-{t}", "    ", s == 0)
    path.write_text("\n".join(lines) + "\n")
    return path


def label_sets(n: int, seed: int = 9) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        t, s = rnd.randrange(TEAMS + 5), rnd.randrange(SERVICES + 3)  # some match nothing
        out.append({
            "alertname": f"Alert{rnd.randrange(200)}", "team": f"team-{t}",
            "service": f"svc-{t}-{s}" + rnd.choice(["", "", "-canary", "-worker"]),
            "severity": rnd.choice(["critical", "warning", "info"]),
            "env": rnd.choice(["prod", "prod", "staging", "dev"]), "instance": f"10.0.{t}.{s}",
        })  # fmt: skip
    return out


def linear(table: RoutingTable, labels: Mapping[str, str]) -> list[str]:
    """Evaluate every rule, then apply the tree's semantics to the answers."""
    hit = {id(r): all(m.matches(labels) for m in r.matchers) for r in table.route.walk()}

    def walk(r: Route) -> list[Route]:
        if not hit[id(r)]:
            return []
        found: list[Route] = []
        for child in r.routes:
            hits = walk(child)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [r]

    return list(dict.fromkeys(r.receiver for r in walk(table.route)))


def _per_alert_us(fn: Any, sets: list[dict[str, str]]) -> tuple[float, list[list[str]]]:
    t0 = time.perf_counter()
    out = [fn(ls) for ls in sets]
    return (time.perf_counter() - t0) / len(sets) * 1e6, out


def measure(tmp: Path) -> dict[str, Any]:
    sets = label_sets(LABEL_SETS)
    out: dict[str, Any] = {"label_sets": LABEL_SETS, "linear_label_sets": LINEAR_SETS}
    for shape in ("nested", "flat"):
        table = load_routing(str(write_tree(tmp / f"routes-{shape}.yaml", shape)))
        routes = sum(1 for _ in table.route.walk()) - 1
        tree_us, got = _per_alert_us(table.match, sets)
        lin_us, want = _per_alert_us(lambda ls, t=table: linear(t, ls), sets[:LINEAR_SETS])
        out[shape] = {
            "routes": routes,
            "tree_us_per_alert": round(tree_us, 1),
            "linear_us_per_alert": round(lin_us, 1),
            "speedup_vs_linear": round(lin_us / tree_us, 2),
            "same_results": got[:LINEAR_SETS] == want,
            "unmatched_to_root": sum(r == ["root"] for r in got),
        }
    return out
