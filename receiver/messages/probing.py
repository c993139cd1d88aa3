"""Probed renders of the chosen template, for the renderer's fit (receiver.messages.probe)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import Template

from receiver.messages.bounds import MAX_TEMPLATE_CHARS, TemplateLimitError
from receiver.messages.probe import Compares, Probe, active
from receiver.messages.sandbox import limited, probe_plan


@dataclass(frozen=True)
class Probed:
    """A probed render: its output, for how many alerts, and what it noted."""

    out: str
    upto: int
    probe: Probe
    compares: Compares

    def derive(self, k: int) -> str | None:
        """The output for the first k alerts; None when it can't be cut from this one."""
        return self.probe.derive(self.out, self.upto, k, self.compares)


def read(chunks: Iterator[str], probe: Probe | None = None) -> str:
    """A template's output, or TemplateLimitError once it passes MAX_TEMPLATE_CHARS.
    With a probe, it keeps the probe's count of characters read up to date."""
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_TEMPLATE_CHARS:
            raise TemplateLimitError(f"more than {MAX_TEMPLATE_CHARS} characters of output")
        out.append(chunk)
        if probe is not None:
            probe.pos = size  # read by the probe when the template asks for an alert
    return "".join(out)


def plan_of(load: Callable[[str], Template], name: str) -> tuple[Template, Compares] | None:
    """The template `load` gives for `name`, and its probe plan; None when it has none
    (or can't be loaded)."""
    try:
        template = load(name)
    except Exception:  # missing or broken: the exact render says so, and falls back
        return None
    compares: Compares | None = probe_plan(template)
    return None if compares is None else (template, compares)


def probed_render(
    template: Template, compares: Compares, ctx: dict[str, Any], upto: int
) -> Probed | None:
    """A render of `upto` alerts that notes where each alert's part begins; None when
    it fails (the exact render then fails, and falls back, as it always did)."""
    p = Probe()
    token = active.set(p)
    try:
        with limited(template):
            out = read(template.generate(ctx), p)
    except Exception:
        return None
    finally:
        active.reset(token)
    return Probed(out, upto, p, compares)
