"""The templates shipped in templates/ render without the budget; any other is checked."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

import receiver.messages.shipped as shipped_module
from receiver.messages.render import Renderer
from receiver.messages.sandbox import Budget, budget
from receiver.messages.shipped import SHIPPED, shipped
from tests.render_support import NOW, TEMPLATES, am


@pytest.mark.parametrize("path", sorted(Path(TEMPLATES).glob("*.j2")), ids=lambda p: p.name)
def test_every_file_in_templates_is_shipped(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in SHIPPED, (
        f"{path.name} changed: it renders without the template budget only once its"
        f" SHA-256 ({digest}) is in receiver/messages/shipped.py"
    )
    assert shipped(path.read_text(encoding="utf-8"))


def _budgets_seen(folder: Path, text: str) -> list[Any]:
    """Render a template of `text` whose filter notes the budget it runs under."""
    (folder / "t.md.j2").write_text(text, encoding="utf-8")
    r = Renderer(str(folder))
    seen: list[Any] = []
    for env in (r.env, r.shipped_env):
        env.filters["note"] = lambda value: seen.append(budget.get()) or value
    msg = r.render(am("am-firing-4"), template="t.md.j2", now=NOW)
    assert not msg.fallback
    assert "noted" in msg.msg["markdown"]["text"]
    return seen


TEXT = "{{ title | note }} noted\n"


def test_a_template_of_shipped_text_renders_without_a_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        shipped_module, "SHIPPED", frozenset({hashlib.sha256(TEXT.encode()).hexdigest()})
    )
    seen = _budgets_seen(tmp_path, TEXT)
    assert seen and all(b is None for b in seen)


def test_a_changed_template_renders_within_a_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        shipped_module, "SHIPPED", frozenset({hashlib.sha256(TEXT.encode()).hexdigest()})
    )
    seen = _budgets_seen(tmp_path, TEXT + " ")  # one character more
    assert seen and all(isinstance(b, Budget) for b in seen)


def test_a_runaway_added_to_a_shipped_template_still_falls_back(tmp_path: Path) -> None:
    shutil.copy(Path(TEMPLATES) / "default.md.j2", tmp_path / "default.md.j2")
    with open(tmp_path / "default.md.j2", "a", encoding="utf-8") as f:
        f.write('{{ "x" * 10**9 }}\n')
    msg = Renderer(str(tmp_path)).render(am("am-firing-4"), now=NOW)
    assert msg.fallback


def test_the_shipped_template_renders_the_same_with_or_without_the_budget(
    tmp_path: Path,
) -> None:
    n = am("am-firing-4")
    want = Renderer(TEMPLATES).render(n, now=NOW).msg
    copy = tmp_path / "default.md.j2"
    copy.write_bytes((Path(TEMPLATES) / "default.md.j2").read_bytes() + b"\n")  # not shipped
    assert Renderer(str(tmp_path)).render(n, now=NOW).msg == want
