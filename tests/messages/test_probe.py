"""One probed render gives the exact output for fewer alerts (receiver.messages.probe).

The renderer with probes must return byte for byte what it returns without them, for
any group, budget and template; templates whose output it can't cut are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import Environment

from receiver.messages.probe import Compares, plan
from receiver.messages.render import Renderer
from receiver.model import Alert, Notification
from tests.messages.test_budget import notifications
from tests.render_support import TEMPLATES, am

NOW = datetime(2026, 11, 28, 3, 19, 15, 123456, tzinfo=UTC)

# Templates a plan accepts (their output for k alerts is cut from one render of more).
CUT = {
    "index and a count": (
        "{% for a in alerts %}{{ loop.index }}. {{ a.labels.alertname }} "
        "{{ a.annotations.summary }}\n{% endfor %}"
        "{% if alerts | length > 3 %}many{% elif 2 == alerts | count %}two{% endif %}"
    ),
    "two loops, one filtered": (
        "{% for a in alerts %}{{ a.status }} {% endfor %}\n---\n"
        "{% for a in alerts if a.status == 'firing' %}{{ loop.index0 }}:"
        "{{ a.labels.instance | md }}\n{% endfor %}"
        "{% if 2 < alerts | length %}x{% else %}y{% endif %}"
    ),
    "loops inside ifs": (
        "{% if alerts | length == 1 %}{% for a in alerts %}one {{ a.labels.x }}{% endfor %}"
        "{% else %}{% for a in alerts %}{% if loop.first %}first {% endif %}"
        "{{ a.annotations.summary | md }}\n{% endfor %}{% endif %}tail"
    ),
    "inner loops and sets": (
        "{% for a in alerts %}{% set s = a.labels | join_labels(keyLabels) %}"
        "{% for k, v in a.labels | dictsort %}{{ k }}={{ v }}{{ ',' if not loop.last }}"
        "{% endfor %}\n{{ s }} {{ a.startsAt | localtime }}\n{% endfor %}"
    ),
    "previtem": (
        "{% for a in alerts %}{% if loop.previtem and loop.previtem.status != a.status %}"
        "--\n{% endif %}{{ a.status }} {{ a.annotations.description }}\n{% endfor %}"
    ),
}
# Templates a plan refuses: each reads the count, or carries state, some other way.
S = "{{ a.annotations.summary }} {{ a.labels.instance }}\n"  # each alert's own text
REFUSED = {
    "loop.last": "{% for a in alerts %}" + S + "{{ ',' if not loop.last }}{% endfor %}",
    "loop.length": "{% for a in alerts %}" + S + "{{ loop.length }}{% endfor %}",
    "loop.revindex": "{% for a in alerts %}" + S + "{{ loop.revindex }}{% endfor %}",
    "loop.nextitem": "{% for a in alerts %}" + S + "{{ loop.nextitem.status }}{% endfor %}",
    "the count printed": "{% for a in alerts %}" + S + "{% endfor %}{{ alerts | length }}",
    "the count in a sum": "{% for a in alerts %}" + S + "{{ alerts | length + 1 }}{% endfor %}",
    "firing": "{% for a in alerts %}" + S + "{% endfor %}{% for a in firing %}f{% endfor %}",
    "resolved": "{% for a in alerts %}" + S + "{% endfor %}{{ resolved | length }}",
    "hiddenAlerts": "{% for a in alerts %}" + S + "{% endfor %}{{ hiddenAlerts }}",
    "a call": "{% for a in alerts %}" + S + "{{ a.labels.keys() | list }}{% endfor %}",
    "a call that changes state": (
        "{% set xs = [] %}{% for a in alerts %}" + S + "{{ xs.append(1) or '' }}{% endfor %}"
        "{{ xs | length }}"
    ),
    "a namespace": (
        "{% set ns = namespace(n=0) %}{% for a in alerts %}" + S + "{% set ns.n = ns.n + 1 %}"
        "{% endfor %}{{ ns.n }}"
    ),
    "a lazy sequence kept": (
        "{% set g = (['p', 'q'] * 40) | map('upper') %}{% for a in alerts %}"
        + S
        + "{{ g | first }}{% endfor %}{{ g | list | length }}"
    ),
    "else": "{% for a in alerts if a.status == 'resolved' %}" + S + "{% else %}none{% endfor %}",
    "nested in a loop": "{% for x in [1, 2] %}{% for a in alerts %}" + S + "{% endfor %}" * 2,
    "captured": "{% set s %}{% for a in alerts %}" + S + "{% endfor %}{% endset %}{{ s }}!",
    "the first alert": "{% for a in alerts %}" + S + "{% endfor %}{{ alerts[0].status }}",
    "the last alert": "{% for a in alerts %}" + S + "{% endfor %}{{ (alerts | last).status }}",
    "alerts shadowed": "{% set alerts = [1] %}{% for a in alerts %}{{ a }}{% endfor %}",
    "a comparison with a name": (
        "{% for a in alerts %}" + S + "{% endfor %}{{ alerts | length == keyLabels | length }}"
    ),
    "an include": "{% include 'other.j2' %}{% for a in alerts %}" + S + "{% endfor %}",
    "recursive": "{% for a in alerts recursive %}" + S + "{% endfor %}",
}


class Exact(Renderer):
    """The renderer as it was: one render per count tried (no template has a plan)."""

    def render(self, *args: Any, **kwargs: Any) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("receiver.messages.render.plan_of", lambda env, name: None)
            return super().render(*args, **kwargs)


def parsed(source: str) -> Compares | None:
    found = plan(Environment().parse(source))
    return None if found is None else found[1]


def test_the_default_templates_have_plans() -> None:
    for name in ("default.md.j2", "default.text.j2", "default.action_card.j2"):
        assert parsed((Path(TEMPLATES) / name).read_text(encoding="utf-8")) is not None, name
    md = (Path(TEMPLATES) / "default.md.j2").read_text(encoding="utf-8")
    assert parsed(md) == (("eq", 1), ("gt", 1))


@pytest.mark.parametrize("source", CUT.values(), ids=CUT.keys())
def test_templates_it_can_cut_have_plans(source: str) -> None:
    assert parsed(source) is not None


@pytest.mark.parametrize("source", REFUSED.values(), ids=REFUSED.keys())
def test_templates_it_cannot_cut_are_refused(source: str) -> None:
    assert parsed(source) is None


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("probe-templates")
    for name in ("default.md.j2", "default.text.j2", "default.action_card.j2"):
        (path / name).write_text((Path(TEMPLATES) / name).read_text(encoding="utf-8"))
    for i, source in enumerate([*CUT.values(), *REFUSED.values()]):
        (path / f"t{i}.md.j2").write_text(source, encoding="utf-8")
    (path / "other.j2").write_text("{{ alerts | length }}\n", encoding="utf-8")
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    groups=st.lists(notifications(), min_size=1, max_size=3),
    budget=st.one_of(st.sampled_from([256, 600, 2048]), st.integers(256, 4096)),
    msgtype=st.sampled_from(["markdown", "text", "action_card", "oa"]),
    which=st.integers(0, len(CUT) + len(REFUSED) + 1),
)
def test_probed_renders_are_byte_identical_to_exact_ones(
    folder: Path, groups: list[Notification], budget: int, msgtype: str, which: int
) -> None:
    """Several groups in turn, so the fit's hint (kept per template) plays its part."""
    template = None if which > len(CUT) + len(REFUSED) - 1 else f"t{which}.md.j2"
    probed, exact = Renderer(str(folder)), Exact(str(folder))
    kw: dict[str, Any] = {"template": template, "msgtype": msgtype, "now": NOW, "max_bytes": budget}
    for n in groups:
        assert outcome(probed, n, kw) == outcome(exact, n, kw)


def outcome(r: Renderer, n: Notification, kw: dict[str, Any]) -> Any:
    try:
        return r.render(n, **kw)
    except Exception as e:  # an oa head alone can be over a tiny budget: the same error
        return repr(e)


def test_ten_alerts_over_the_budget_take_one_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default template, a group it must cut: one render of k + 1 alerts, not two."""
    r = Renderer(TEMPLATES)
    n = am("am-firing-55")
    r.render(n, now=NOW, max_bytes=3000)  # the hint learns this template's sizes
    renders: list[int] = []
    real = r.shipped_env.get_template("default.md.j2").generate  # the shipped default

    def counting(*args: Any, **kwargs: Any) -> Any:
        renders.append(len(args[0]["alerts"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(r.shipped_env.get_template("default.md.j2"), "generate", counting)
    m = r.render(n, now=NOW, max_bytes=3000)
    assert 0 < m.shown < len(n.alerts)
    assert renders == [m.shown + 1]
    assert m == Exact(TEMPLATES).render(n, now=NOW, max_bytes=3000)


def big_group(size: int) -> Notification:
    """Alerts of different lengths, firing and resolved: cut by any budget here."""
    alerts = tuple(
        Alert(
            status="firing" if i % 3 else "resolved",
            labels={"alertname": "Disk", "instance": f"host-{i}:9100"},
            annotations={"summary": f"disk {i} " + "full " * (i % 7) * 5},
            starts_at=NOW,
            ends_at=None,
            fingerprint=f"{i:016x}",
        )
        for i in range(size)
    )
    return Notification(
        source="alertmanager", receiver="r", status="firing", alerts=alerts, truncated_alerts=1
    )


@pytest.mark.parametrize("name", [*CUT, *REFUSED])
def test_each_template_cut_by_the_budget_renders_as_before(folder: Path, name: str) -> None:
    template = f"t{[*CUT, *REFUSED].index(name)}.md.j2"
    probed, exact = Renderer(str(folder)), Exact(str(folder))
    for size, budget in ((30, 600), (30, 1000), (12, 2048), (40, 2048), (3, 300), (8, 700)):
        kw: dict[str, Any] = {"template": template, "now": NOW, "max_bytes": budget}
        got, want = probed.render(big_group(size), **kw), exact.render(big_group(size), **kw)
        assert got == want
        assert not got.fallback or name in ("an include",), got


def test_after_the_template_fails_no_probed_text_is_used(tmp_path: Path) -> None:
    """It fails for one alert only (a plan can't know): every build after that failure
    is the built-in template's, as without probes, never a cut of an earlier render."""
    (tmp_path / "f.md.j2").write_text(
        "{% if alerts | length == 1 %}{{ 1 / 0 }}{% endif %}{% for a in alerts %}"
        + S
        + "{% endfor %}",
        encoding="utf-8",
    )
    assert parsed((tmp_path / "f.md.j2").read_text(encoding="utf-8")) == (("eq", 1),)
    seen = 0
    for size in (2, 3, 5, 12, 30):
        for budget in range(256, 2400, 97):
            kw: dict[str, Any] = {"template": "f.md.j2", "now": NOW, "max_bytes": budget}
            got = Renderer(str(tmp_path)).render(big_group(size), **kw)
            assert got == Exact(str(tmp_path)).render(big_group(size), **kw)
            seen += got.fallback
    assert seen  # some fits did reach the failing count

    def five_one_three(build: Any, total: int, budget: int, hint: Any = None) -> Any:
        build(5, None)  # probed: 6 rendered, 5 cut from it
        build(1, None)  # exact: fails, the built-in template from here on
        return build(3, None), 3  # not cut from the probe of 6: the built-in one

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("receiver.messages.render.fit", five_one_three)
        kw = {"template": "f.md.j2", "now": NOW}
        got = Renderer(str(tmp_path)).render(big_group(12), **kw)
        assert got == Exact(str(tmp_path)).render(big_group(12), **kw)
        assert got.fallback
