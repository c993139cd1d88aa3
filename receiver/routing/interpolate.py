"""`${VAR}` in routing.yaml: values from the environment, kept out of every message. Pure.

Every string scalar of the file (keys too) is expanded before any section is read,
so `${VAR}` works wherever a string does. `$${VAR}` is a literal `${VAR}`. A name
that is not set is a FILE:LINE problem that names it, never an empty string.

Interpolated values are often secrets (a robot's access_token, its 加签 secret):
the Reader is told each value, and redacts it as `${VAR}` from every problem and
warning it reports, so that a check-config run or a refused reload cannot print it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from receiver.routing.yamlnodes import Reader

# ${NAME}, or $${NAME} (an escaped, literal ${NAME}); NAME as a shell variable's.
_REF = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STRING = "tag:yaml.org,2002:str"


def interpolate(rd: Reader, root: Node, env: Mapping[str, str]) -> None:
    """Expand `${VAR}` in every string scalar under `root`, in place."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:  # an alias (*anchor) shares its node: expand it once
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for k, v in node.value:
                todo += [k, v]
        elif isinstance(node, SequenceNode):
            todo += node.value
        elif isinstance(node, ScalarNode) and node.tag == _STRING and "${" in node.value:
            node.value = _expand(rd, node, env)


def _expand(rd: Reader, node: ScalarNode, env: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        escaped, name = m.group(1), m.group(2)
        if escaped:
            return "${" + name + "}"
        if not _NAME.match(name):
            rd.error(node, f"${{{name}}} is not a variable name (letters, digits and _)")
            return m.group(0)
        if name not in env:
            rd.error(node, f"environment variable {name} is not set (used as ${{{name}}})")
            return m.group(0)
        value = env[name]
        rd.secret(name, value)
        return value

    return _REF.sub(one, str(node.value))
