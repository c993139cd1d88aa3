"""One render of k alerts that also gives the exact output for fewer. Pure.

`fit` asks a template's output for several alert counts (k fits, k + 1 does not).
For a template whose output depends on how many alerts it is given only through
its loops over `alerts` and through comparisons of `alerts | length` with a
number, the output for k alerts is the output for n > k with, in each of those
loops, what the iterations from the k-th on wrote cut out: the template runs the
same up to that iteration, and nothing a removed iteration did can reach what
follows it. `plan` decides that from the template's syntax tree, refusing anything
it can't be sure of; the renderer then renders once with a `Probe` that notes
where each iteration started, and `derive` cuts. Any other template is rendered
once per count, as before.

What a template may do, for a plan:
- read `alerts` only as the iterable of a `for` at the top level (inside `if`s
  only: its output then goes straight out), not recursive, without `else`; or as
  `alerts | length` (or `count`) compared with a number constant;
- use, in such a loop, `loop.index`, `index0`, `first`, `depth`, `depth0` and
  `previtem` only (`last`, `length`, `revindex` and `nextitem` look ahead);
- read none of `firing`, `resolved`, `hiddenAlerts` (they change with the count);
- call nothing (a call may change state a later part reads), set no namespace
  attribute, and keep no lazy sequence (`map`, `select`, …) in a variable, which a
  removed iteration could advance;
- include, import, extend and define blocks not at all.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes

# How a count compares with a number: "len OP const".
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
}
_FLIPPED = {"eq": "eq", "ne": "ne", "lt": "gt", "lteq": "gteq", "gt": "lt", "gteq": "lteq"}
# Context variables whose value changes with the count of alerts shown.
_COUNTED_NAMES = frozenset({"firing", "resolved", "hiddenAlerts"})
_REFUSED_NODES = (
    nodes.Call,
    nodes.NSRef,
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Block,
)
# Loop attributes known without looking ahead in the items.
_LOOP_ATTRIBUTES = frozenset({"index", "index0", "first", "depth", "depth0", "previtem"})
# Filters that return a lazy iterator (state a removed iteration could advance).
_LAZY_FILTERS = frozenset(
    {
        "map",
        "select",
        "reject",
        "selectattr",
        "rejectattr",
        "batch",
        "slice",
        "unique",
        "reverse",
        "items",
    }  # fmt: skip
)

Compares = tuple[tuple[str, Any], ...]


def plan(tree: nodes.Template) -> tuple[list[nodes.For], Compares] | None:
    """The loops over `alerts` to watch and the count comparisons, or None when the
    template's output for fewer alerts can't be cut from one render's."""
    if any(True for _ in tree.find_all(_REFUSED_NODES)):
        return None
    loops: list[nodes.For] = []
    if not _top_loops(tree.body, loops):
        return None
    allowed = {id(loop.iter) for loop in loops}
    compares: list[tuple[str, Any]] = []
    for cmp in tree.find_all(nodes.Compare):
        if len(cmp.ops) != 1:
            continue
        left, op, right = cmp.expr, cmp.ops[0].op, cmp.ops[0].expr
        if op not in _OPS:
            continue
        if _is_count(left) and _is_number(right):
            compares.append((op, right.value))  # type: ignore[attr-defined]
            allowed.add(id(left.node))  # type: ignore[attr-defined]
        elif _is_number(left) and _is_count(right):
            compares.append((_FLIPPED[op], left.value))  # type: ignore[attr-defined]
            allowed.add(id(right.node))  # type: ignore[attr-defined]
    for name in tree.find_all(nodes.Name):
        if name.name in _COUNTED_NAMES:
            return None
        if name.name == "alerts" and (name.ctx != "load" or id(name) not in allowed):
            return None
    values = [a.node for a in tree.find_all(nodes.Assign)]
    values += [v for w in tree.find_all(nodes.With) for v in w.values]
    for value in values:
        lazy = (f for f in value.find_all(nodes.Filter) if f.name in _LAZY_FILTERS)
        if (isinstance(value, nodes.Filter) and value.name in _LAZY_FILTERS) or any(lazy):
            return None
    for loop in loops:
        if not _loop_reads_ok(loop):
            return None
    return loops, tuple(compares)


def _top_loops(body: list[nodes.Node], loops: list[nodes.For]) -> bool:
    """Collect the `for … in alerts` whose output goes straight out; False for one
    that may not be cut (recursive, or with an `else`)."""
    for stmt in body:
        if isinstance(stmt, nodes.For) and _is_alerts(stmt.iter):
            if stmt.recursive or stmt.else_:
                return False
            loops.append(stmt)
        elif isinstance(stmt, nodes.If):
            branches = [stmt.body, *(e.body for e in stmt.elif_), stmt.else_]
            if not all(_top_loops(b, loops) for b in branches):
                return False
    return True


def _loop_reads_ok(loop: nodes.For) -> bool:
    """True when the loop's own `loop` is read only for what needs no look-ahead."""
    parts: list[nodes.Node] = [*loop.body]
    if loop.test is not None:
        parts.append(loop.test)
    return all(_loop_refs_ok(p, None) for p in parts)


def _loop_refs_ok(node: nodes.Node, parent: nodes.Node | None) -> bool:
    if isinstance(node, nodes.Name) and node.name == "loop":
        return isinstance(parent, nodes.Getattr) and parent.attr in _LOOP_ATTRIBUTES
    if isinstance(node, nodes.For):  # its own `loop` in its body; the outer one elsewhere
        outer = [node.target, node.iter, *([node.test] if node.test else []), *node.else_]
        return all(_loop_refs_ok(c, node) for c in outer)
    return all(_loop_refs_ok(c, node) for c in node.iter_child_nodes())


def _is_alerts(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "alerts" and node.ctx == "load"


def _is_count(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Filter)
        and node.name in ("length", "count")
        and node.node is not None
        and _is_alerts(node.node)
        and not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)
    )


def _is_number(node: nodes.Node) -> bool:
    # finite: the plan is written into the template's module as a literal
    return (
        isinstance(node, nodes.Const)
        and isinstance(node.value, int | float)
        and math.isfinite(node.value)
    )


class Probe:
    """What one render noted: where each iteration of each watched loop started in
    the output, and where the loop ended (`pos` is kept by the renderer's reader)."""

    __slots__ = ("pos", "runs")

    def __init__(self) -> None:
        self.pos = 0  # characters of output read so far
        self.runs: list[tuple[list[int], list[int]]] = []  # (starts, [end])

    def loop(self, items: Iterable[Any], take: Callable[[], None] | None) -> Iterator[Any]:
        """A watched loop's items; `take` counts each as a step, as the sandbox does."""
        starts: list[int] = []
        end: list[int] = []
        self.runs.append((starts, end))
        for item in items:
            if take is not None:
                take()
            starts.append(self.pos)
            yield item
        end.append(self.pos)

    def derive(self, out: str, n: int, k: int, compares: Compares) -> str | None:
        """The output for the first k of the n alerts `out` was rendered with, or None
        when it can't be told (a comparison of the count that k answers otherwise)."""
        if k > n or any(_OPS[op](k, c) != _OPS[op](n, c) for op, c in compares):
            return None
        pieces, at = [], 0
        for starts, end in self.runs:
            if len(starts) != n or not end:  # not the whole list, or not to its end
                return None
            if k < n:
                pieces.append(out[at : starts[k]])
                at = end[0]
        if not pieces:
            return out
        pieces.append(out[at:])
        return "".join(pieces)


# The probe of the render in progress; None (no notes taken) for any other render.
active: ContextVar[Probe | None] = ContextVar("template_probe", default=None)
