"""Jinja's sandbox, bounded in time and memory, for the templates users write. Pure.

A render of a user template has a `Budget`: loop steps and calls, and characters
made. Every operation that can make a value much bigger than its inputs is
checked *before* it runs, so that no single value passes MAX_TEMPLATE_CHARS:
`*`, `**`, `%` and `+`; `~` and block captures (`{% set %}`, macros); string
methods that pad, repeat or substitute (`center`, `ljust`, `zfill`, `expandtabs`,
`replace`, `join`, `translate`, `format`); a size past the limit given to what
pads or repeats by it (`center(10**9)`, `batch(10**9)`, `int.to_bytes(10**9)`);
`lipsum`; an output that is
not text (a list printed as `[…]`). The estimates are in receiver.messages.bounds.
What each makes is charged to the render's budget, so many values just under
the limit can't add up either. Past a limit, TemplateLimitError; the renderer falls back to the
built-in template. The built-in templates render with no budget.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import SandboxedEnvironment

from receiver.messages.bounds import (
    MAX_TEMPLATE_CHARS,
    MAX_TEMPLATE_MADE,
    MAX_TEMPLATE_STEPS,
    SIZE_FILTERS,
    TemplateLimitError,
    check_binop,
    check_call,
    filter_made,
    format_size,
    numbers,
    refuse,
    size,
)
from receiver.messages.probe import active, plan
from receiver.messages.shipped import shipped

__all__ = ["MAX_TEMPLATE_CHARS", "Budget", "Sandbox", "TemplateLimitError", "limited", "size"]

_FORMATS = ("format", "format_map")
# What `getattr` finds on a plain dict: its methods, nothing else.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# A for loop's counters and flags (`loop.last`, …): ints and bools, read without the
# sandbox's general checks. Not previtem/nextitem: they are the loop's own items.
_LOOP_ATTRIBUTES = frozenset(
    "index index0 revindex revindex0 first last length depth depth0".split()
)
# Filters that return what they were given, a part of it, or a number: not checked.
_PLAIN_FILTERS = frozenset(
    "length count first last default d attr select reject selectattr rejectattr map "
    "sort dictsort unique reverse random min max items _counted abs int float".split()
)
# Filters whose text is at most a few times their input's: only what they make is counted.
_LIGHT_FILTERS = frozenset(
    "md mdurl mdlink mdlinks oneline cut cut_bytes localtime duration upper lower trim title "
    "capitalize striptags safe truncate wordcount round filesizeformat".split()
)


class Budget:
    """What one render of a user template may still do."""

    def __init__(self) -> None:
        self.steps = MAX_TEMPLATE_STEPS
        self.chars = MAX_TEMPLATE_MADE

    def take(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise TemplateLimitError(f"more than {MAX_TEMPLATE_STEPS} loop steps and calls")

    def charge(self, chars: int) -> None:
        self.chars -= chars
        if self.chars < 0:
            raise TemplateLimitError(f"more than {MAX_TEMPLATE_MADE} characters made in all")


# The budget of the template being rendered; None (no limit) for the built-in ones.
budget: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def limited(template: Any = None) -> Iterator[None]:
    """Bound the template rendered inside this block by a fresh Budget; none for a
    `template` shipped in templates/ (receiver.messages.shipped), as for a built-in."""
    token = budget.set(None if template is not None and is_shipped(template) else Budget())
    try:
        yield
    finally:
        budget.reset(token)


def counted(items: Iterable[Any]) -> Iterator[Any]:
    """A `for` loop's items, each one a step."""
    b = budget.get()
    for item in items:
        if b is not None:
            b.take()
        yield item


def alerts_loop(items: Iterable[Any]) -> Iterator[Any]:
    """A `for … in alerts` that a probe may watch (receiver.messages.probe); else `counted`."""
    p = active.get()
    if p is None:
        return counted(items)
    b = budget.get()
    return p.loop(items, b.take if b is not None else None)


def joined(values: list[Any]) -> str:
    """`a ~ b ~ c`: refused when the text would be too long, else charged."""
    b = budget.get()
    if b is not None:
        made = size(values)
        refuse(made, "a ~ join")
        b.charge(made)
    return "".join(map(str, values))


def _finalize(value: Any) -> Any:
    """A value about to be output: refused when its text would be too long."""
    if type(value) is str or isinstance(value, Undefined | int | float):
        return value
    if budget.get() is not None:
        refuse(size(value), "an output")
    return value


def _concat(chunks: Iterable[str]) -> str:
    """Jinja's "".join for block captures, macros and `caller()`, within the limits."""
    b = budget.get()
    if b is None:
        return "".join(chunks)
    parts = list(chunks)
    made = sum(len(p) for p in parts)
    refuse(made, "a block")
    b.charge(made)
    return "".join(parts)


def guarded(f: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Filter `f`, checked: its numbers, how big its input is, and what it makes."""
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0  # context or env
    light = name in _LIGHT_FILTERS
    sized = name in SIZE_FILTERS  # center(10**9), batch(10**9, "x")
    what = f"filter {name}"

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        b = budget.get()
        if b is None:
            return f(*args, **kwargs)
        rest = args[skip + 1 :]
        if sized:
            numbers([*rest, *kwargs.values()], what)
        if not light:
            value = args[skip] if len(args) > skip else None
            given = size(value) + sum(map(size, rest)) + sum(map(size, kwargs.values()))
            refuse(given, what)
            if name in ("replace", "format", "indent", "wordwrap") and isinstance(value, str):
                refuse(filter_made(name, value, rest, kwargs), what)
        out = f(*args, **kwargs)
        made = len(out) if type(out) is str else size(out)
        if made > MAX_TEMPLATE_CHARS:  # refuse(made, what), without the call: every filter
            refuse(made, what)
        b.chars -= made  # b.charge(made), likewise
        if b.chars < 0:
            b.charge(0)
        return out

    return run


class _PlanWriter(CodeGenerator):
    """Jinja's code generator, leaving in the template's module its probe plan as
    `probe_plan` (the count comparisons, or None when it has none), and as `shipped`
    whether its text is a shipped template's."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        super().visit_Template(node, frame)
        self.writeline(f"probe_plan = {getattr(node, 'probe_plan', None)!r}")
        self.writeline(f"shipped = {getattr(node, 'shipped', False)!r}")


def probe_plan(template: Any) -> Any:
    """A compiled template's count comparisons (receiver.messages.probe), or None."""
    return template.root_render_func.__globals__.get("probe_plan")


def is_shipped(template: Any) -> bool:
    """Whether a compiled template's text is a shipped one's (receiver.messages.shipped)."""
    return bool(template.root_render_func.__globals__.get("shipped"))


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox with the checks above, and a faster `a.labels` on a plain dict.

    The sandbox tries the attribute first and the key only after catching the
    AttributeError; a template reads dict keys this way about 25 times per alert,
    and the exceptions were a third of its time. For a name that is no attribute
    of dict, looking the key up directly gives the same result.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _PlanWriter

    def __init__(self, *, checked: bool = True, **options: Any) -> None:
        """`checked=False`: for templates that render without a budget only (the shipped
        and the built-in ones): no check on what they output, and (`guard_filters` not
        called) none on their filters."""
        super().__init__(finalize=_finalize if checked else None, **options)
        self.concat = _concat  # type: ignore[method-assign]
        self.filters["_counted"] = counted
        self.filters["_alerts_loop"] = alerts_loop
        self.filters["_joined"] = joined

    def guard_filters(self) -> None:
        """Check every filter (call once the filters are all in)."""
        for name, f in list(self.filters.items()):
            if name not in _PLAIN_FILTERS and name not in ("_joined", "_alerts_loop"):
                self.filters[name] = guarded(f, name)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template, each `for` loop counting its steps and each `~` its size."""
        tree = super()._parse(source, name, filename)
        tree.shipped = shipped(source)  # type: ignore[attr-defined]
        found = plan(tree)
        watched = {id(loop) for loop in found[0]} if found else set()
        tree.probe_plan = found[1] if found else None  # type: ignore[attr-defined]
        for loop in tree.find_all(nodes.For):
            wrap = "_alerts_loop" if id(loop) in watched else "_counted"
            loop.iter = nodes.Filter(loop.iter, wrap, [], [], None, None, lineno=loop.lineno)
        for cat in tree.find_all(nodes.Concat):
            items = nodes.List(cat.nodes, lineno=cat.lineno)
            cat.nodes = [nodes.Filter(items, "_joined", [], [], None, None, lineno=cat.lineno)]
        return tree

    def _checked_format(self, obj: str, name: str) -> Callable[..., str]:
        """`"…".format(…)` and `format_map`, refused when they would make too much."""
        wrapped = self.wrap_str_format(getattr(obj, name))
        assert wrapped is not None

        def checked(*args: Any, **kwargs: Any) -> str:
            if budget.get() is not None:
                many = name == "format_map" and args and isinstance(args[0], dict)
                refuse(
                    format_size(obj, args[0].values() if many else [*args, *kwargs.values()]), name
                )
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        b = budget.get()
        if b is None:
            return super().call(__context, __obj, *args, **kwargs)
        b.take()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's loop(items)
            args = (counted(args[0]), *args[1:])
        args = check_call(__obj, args, kwargs)
        out = super().call(__context, __obj, *args, **kwargs)
        if isinstance(out, str):
            b.charge(len(out))
        return out

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        b = budget.get()
        if b is not None:
            check_binop(operator, left, right)
        out = super().call_binop(context, operator, left, right)
        if b is not None and isinstance(out, str | list | tuple):
            b.charge(len(out))
        return out

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, str) and argument in _FORMATS:
            return self._checked_format(obj, argument)
        return super().getitem(obj, argument)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:  # the most, first
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, str) and attribute in _FORMATS:
            return self._checked_format(obj, attribute)
        if type(obj) is LoopContext and attribute in _LOOP_ATTRIBUTES:  # loop.last, …
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)


def error_line(e: BaseException, name: str) -> int:
    """The template line an error came from (0 when unknown)."""
    if isinstance(e, TemplateSyntaxError) and e.lineno:
        return e.lineno
    line = 0
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename and frame.filename.endswith(name) and frame.lineno:
            line = frame.lineno
    return line
