"""Jinja's sandbox, bounded: what a template may reach, and how much it may do."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment

# What `getattr` finds on a plain dict: its methods, nothing else.
_DICT_ATTRIBUTES = frozenset(dir(dict))

# What one render of a template may do: loop iterations plus calls, and characters
# of output or of one repeated string or list. The default templates use a few
# hundred steps and a few thousand characters; past these a template is runaway
# (a loop in a loop over range(100000)) and fails, so the built-in one is used.
MAX_TEMPLATE_STEPS = 1_000_000
MAX_TEMPLATE_CHARS = 1_000_000


class TemplateLimitError(Exception):
    """A template ran past MAX_TEMPLATE_STEPS or MAX_TEMPLATE_CHARS."""


class _Steps:
    def __init__(self) -> None:
        self.left = MAX_TEMPLATE_STEPS

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TemplateLimitError(f"more than {MAX_TEMPLATE_STEPS} loop steps and calls")


# The steps left to the template being rendered; None (no limit) for the built-in.
_steps: ContextVar[_Steps | None] = ContextVar("template_steps", default=None)


@contextmanager
def limited_steps() -> Iterator[None]:
    """Count the loop steps and calls of the template rendered inside this block."""
    token = _steps.set(_Steps())
    try:
        yield
    finally:
        _steps.reset(token)


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    steps = _steps.get()
    for item in items:
        if steps is not None:
            steps.take()
        yield item


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, with a faster `a.labels` on a plain dict.

    The sandbox tries the attribute first and the key only after catching the
    AttributeError; a template reads dict keys this way about 25 times per alert,
    and the exceptions were a third of its time. For a name that is no attribute
    of dict, looking the key up directly gives the same result.
    """

    intercepted_binops = frozenset({"*"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters["_counted"] = _counted

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template, each `for` loop counting its steps (`_counted`)."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_counted", [], [], None, None, lineno=loop.lineno)
        return tree

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        steps = _steps.get()
        if steps is not None:
            steps.take()
            if isinstance(__obj, LoopContext) and args:  # a recursive loop's loop(items)
                args = (_counted(args[0]), *args[1:])
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _steps.get() is not None:
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_TEMPLATE_CHARS:
                        raise TemplateLimitError(f"a repeat longer than {MAX_TEMPLATE_CHARS}")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)
