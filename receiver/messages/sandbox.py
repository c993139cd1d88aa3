"""Jinja's sandbox, bounded in time and memory, for the templates users write. Pure.

A render of a user template has a `Budget`: loop steps and calls, and characters
made. Every operation that can make a value much bigger than its inputs is
checked *before* it runs, so that no single value passes MAX_TEMPLATE_CHARS:
`*`, `**`, `%` and `+`; `~` and block captures (`{% set %}`, macros); string
methods that pad, repeat or substitute (`center`, `ljust`, `zfill`, `expandtabs`,
`replace`, `join`, `translate`, `format`); any filter or call given a number past
the limit (`center(10**9)`, `int.to_bytes(10**9)`); `lipsum`; an output that is
not text (a list printed as `[…]`). What each makes is
charged to the render's budget, so many values just under the limit can't add
up either. Past a limit, TemplateLimitError; the renderer falls back to the
built-in template. The built-in templates render with no budget.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import SandboxedEnvironment

# The default templates use a few hundred steps and a few thousand characters.
MAX_TEMPLATE_STEPS = 1_000_000  # loop iterations plus calls
MAX_TEMPLATE_CHARS = 1_000_000  # the output, and any one string or list made
MAX_TEMPLATE_MADE = 20_000_000  # characters made in all, over one render
MAX_INT_BITS = 100_000  # an integer made by * or ** (about 30,000 digits)

_FORMATS = ("format", "format_map")
# What `getattr` finds on a plain dict: its methods, nothing else.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Filters that return what they were given, a part of it, or a number: not checked.
_PLAIN_FILTERS = frozenset(
    "length count first last default d attr select reject selectattr rejectattr map "
    "sort dictsort unique reverse random min max items _counted abs int float".split()
)
# Filters whose text is at most a few times their input's: only what they make is counted.
_LIGHT_FILTERS = frozenset(
    "md mdurl mdlink oneline cut cut_bytes localtime duration upper lower trim title "
    "capitalize striptags safe truncate wordcount round filesizeformat".split()
)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


class TemplateLimitError(Exception):
    """A template ran past one of the limits above."""


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
def limited() -> Iterator[None]:
    """Bound the template rendered inside this block by a fresh Budget."""
    token = budget.set(Budget())
    try:
        yield
    finally:
        budget.reset(token)


def size(value: Any, limit: int = MAX_TEMPLATE_CHARS) -> int:
    """About how many characters `str(value)` has; once past `limit`, limit + 1."""
    if type(value) is str:  # nearly every value a template handles
        return min(len(value), limit + 1)
    total, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str | bytes | bytearray):
            total += len(v)
        elif isinstance(v, bool) or v is None:
            total += 5
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 1
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            stack += v.keys()
            stack += v.values()
        elif isinstance(v, list | tuple | set | frozenset):
            total += 2 + 2 * len(v)
            stack += v
        else:
            total += 24  # a float, a date, an Undefined …: a short text
        if total > limit:
            return limit + 1
    return total


def _refuse(made: int, what: str) -> None:
    if made > MAX_TEMPLATE_CHARS:
        raise TemplateLimitError(f"{what} would make over {MAX_TEMPLATE_CHARS} characters")


def _numbers(args: Iterable[Any], what: str) -> None:
    for a in args:
        if isinstance(a, int) and abs(a) > MAX_TEMPLATE_CHARS:
            raise TemplateLimitError(f"{what} given {a}, over {MAX_TEMPLATE_CHARS}")


def _printf(fmt: str, args: Any) -> int:
    """About the length of `fmt % args`; every `*` width counts its number."""
    values = list(args) if isinstance(args, tuple) else [args]
    made = len(fmt) + size(values)
    for m in _PRINTF.finditer(fmt):
        for part in m.groups():
            if part and part.isdigit():
                made += int(part)
        made += sum(abs(v) for v in values if isinstance(v, int)) if "*" in m.group(0) else 0
    return made


def _format(fmt: str, args: Iterable[Any]) -> int:
    """About the length of `fmt.format(*args)`: widths and precisions, and each field
    as long as the longest argument."""
    longest = max((size(a) for a in args), default=0)
    made = len(fmt)
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None:
            continue
        if spec and "{" in spec:
            raise TemplateLimitError("a format width taken from an argument")
        made += longest + sum(int(n) for n in re.findall(r"\d+", spec or ""))
    return made


def _str_method(s: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """About the length of what `s.name(*args)` returns (0 when it can't grow much)."""
    if name == "expandtabs":
        tab = (args or (kwargs.get("tabsize", 8),))[0]
        return len(s) + s.count("\t") * (tab if isinstance(tab, int) else 8)
    if name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        hits = s.count(args[0]) if args[0] else len(s) + 1
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else -1
        return len(s) + (hits if count < 0 else min(hits, count)) * len(args[1])
    if name == "translate" and args and isinstance(args[0], dict):
        return len(s) * max((size(v) for v in args[0].values()), default=1)
    return 0


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call that would make too much; the arguments to call it with."""
    _numbers([*args, *kwargs.values()], getattr(obj, "__name__", "a call"))
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if isinstance(owner, str) and name == "join" and args:
        items = list(args[0])
        _refuse(size(items) + len(owner) * len(items), "join")
        return (items, *args[1:])
    if isinstance(owner, str):
        _refuse(_str_method(owner, name, args, kwargs), name)
    if name == "generate_lorem_ipsum":  # lipsum(n=5, html=True, min=20, max=100)
        given = (
            {"n": 5, "max": 100}
            | dict(zip(("n", "html", "min", "max"), args, strict=False))
            | kwargs
        )
        _refuse(int(given["n"]) * int(given["max"]) * 12, "lipsum")
    return args


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse `left op right` when what it makes is too big."""
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                _refuse(size(seq) * times, "a repeat")
        if type(left) is int and type(right) is int:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateLimitError(f"a product of over {MAX_INT_BITS} bits")
    elif op == "**" and type(left) is int and type(right) is int and abs(left) > 1:
        if right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateLimitError(f"a power of over {MAX_INT_BITS} bits")
    elif op == "+" and isinstance(left, str | list | tuple):
        _refuse(size(left) + size(right), "a sum")
    elif op == "%" and isinstance(left, str):
        _refuse(_printf(left, right), "a % format")


def counted(items: Iterable[Any]) -> Iterator[Any]:
    """A `for` loop's items, each one a step."""
    b = budget.get()
    for item in items:
        if b is not None:
            b.take()
        yield item


def joined(values: list[Any]) -> str:
    """`a ~ b ~ c`: refused when the text would be too long, else charged."""
    b = budget.get()
    if b is not None:
        made = size(values)
        _refuse(made, "a ~ join")
        b.charge(made)
    return "".join(map(str, values))


def _finalize(value: Any) -> Any:
    """A value about to be output: refused when its text would be too long."""
    if type(value) is str or isinstance(value, Undefined | int | float):
        return value
    if budget.get() is not None:
        _refuse(size(value), "an output")
    return value


def _concat(chunks: Iterable[str]) -> str:
    """Jinja's "".join for block captures, macros and `caller()`, within the limits."""
    b = budget.get()
    if b is None:
        return "".join(chunks)
    parts = list(chunks)
    made = sum(len(p) for p in parts)
    _refuse(made, "a block")
    b.charge(made)
    return "".join(parts)


def guarded(f: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Filter `f`, checked: its numbers, how big its input is, and what it makes."""
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0  # context or env
    light = name in _LIGHT_FILTERS
    what = f"filter {name}"

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        b = budget.get()
        if b is None:
            return f(*args, **kwargs)
        rest = args[skip + 1 :]
        if rest or kwargs:
            _numbers([*rest, *kwargs.values()], what)
        if not light:
            value = args[skip] if len(args) > skip else None
            given = size(value) + sum(map(size, rest)) + sum(map(size, kwargs.values()))
            _refuse(given, what)
            if name in ("replace", "format", "indent", "wordwrap") and isinstance(value, str):
                _refuse(_filter_made(name, value, rest, kwargs), what)
        out = f(*args, **kwargs)
        made = len(out) if type(out) is str else size(out)
        _refuse(made, what)
        b.charge(made)
        return out

    return run


def _filter_made(name: str, s: str, rest: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if name == "replace":
        return _str_method(s, "replace", rest, {})
    if name == "format":
        return _printf(s, tuple(rest) or tuple(kwargs.values()))
    lines = s.count("\n") + 1
    pad = kwargs.get("width", rest[0] if rest else 4)
    if name == "indent":
        return len(s) + lines * (size(pad) if isinstance(pad, str) else 0)
    wrap = kwargs.get("wrapstring", rest[2] if len(rest) > 2 else "\n")
    return len(s) * (1 + size(wrap))


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox with the checks above, and a faster `a.labels` on a plain dict.

    The sandbox tries the attribute first and the key only after catching the
    AttributeError; a template reads dict keys this way about 25 times per alert,
    and the exceptions were a third of its time. For a name that is no attribute
    of dict, looking the key up directly gives the same result.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.concat = _concat  # type: ignore[method-assign]
        self.filters["_counted"] = counted
        self.filters["_joined"] = joined

    def guard_filters(self) -> None:
        """Check every filter (call once the filters are all in)."""
        for name, f in list(self.filters.items()):
            if name not in _PLAIN_FILTERS and name != "_joined":
                self.filters[name] = guarded(f, name)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template, each `for` loop counting its steps and each `~` its size."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_counted", [], [], None, None, lineno=loop.lineno)
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
                _refuse(_format(obj, args[0].values() if many else [*args, *kwargs.values()]), name)
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
        if isinstance(obj, str) and attribute in _FORMATS:
            return self._checked_format(obj, attribute)
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)
