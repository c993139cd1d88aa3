"""The one check of templates/ against a routing table, for `check-config` and `serve` alike.

- A receiver's `template:` that does not exist is an error: `serve` refuses to start,
  as `check-config` fails.
- A template that is used (a receiver's, a default one, or one these include, import
  or extend) and does not compile is an error.
- A template that does not compile and that nothing uses is a warning in both: it can
  never break a page, and a leftover file should not block a deploy; it is named
  so that it is fixed or removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from jinja2 import Environment, TemplateSyntaxError, meta

from receiver.errors import ConfigProblem, not_utf8
from receiver.messages.render import DEFAULT_TEMPLATES
from receiver.routing.table import RoutingTable


@dataclass(frozen=True)
class TemplateCheck:
    errors: list[ConfigProblem]
    warnings: list[ConfigProblem]


def check_templates(table: RoutingTable, templates: str) -> TemplateCheck:
    if not os.path.isdir(templates):
        return TemplateCheck(
            [ConfigProblem(templates, 0, "the templates directory does not exist")], []
        )
    errors = [
        ConfigProblem(
            table.path, r.template_line, f"template {r.template!r} not found in {templates}"
        )
        for r in table.receivers.values()
        if r.template and not os.path.isfile(os.path.join(templates, r.template))
    ]
    env = Environment()
    broken: dict[str, ConfigProblem] = {}
    refs: dict[str, set[str | None]] = {}
    for root, _, files in os.walk(templates):
        for file in sorted(files):
            if not file.endswith(".j2"):
                continue
            path = os.path.join(root, file)
            name = os.path.relpath(path, templates).replace(os.sep, "/")
            with open(path, "rb") as fh:
                raw = fh.read()
            try:
                refs[name] = set(meta.find_referenced_templates(env.parse(raw.decode("utf-8"))))
            except UnicodeDecodeError as e:
                broken[name] = not_utf8(path, raw, e)
            except TemplateSyntaxError as e:
                broken[name] = ConfigProblem(path, e.lineno, e.message or str(e))
    used = _used({*DEFAULT_TEMPLATES.values(), *(r.template for r in table.receivers.values()
                                                   if r.template)}, refs)  # fmt: skip
    dynamic = any(None in r for n, r in refs.items() if n in used)  # include of a variable
    warnings = []
    for name, problem in broken.items():
        if dynamic or name in used:
            errors.append(problem)
        else:
            note = f"{problem.message} (no receiver uses this template: fix or remove it)"
            warnings.append(ConfigProblem(problem.file, problem.line, note))
    return TemplateCheck(errors, warnings)


def _used(start: set[str], refs: dict[str, set[str | None]]) -> set[str]:
    used, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        todo.extend(r for r in refs.get(name, ()) if r is not None)
    return used
