"""The child index of a big route level: the same answers as walking every child."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.routing.matchers import Matcher
from receiver.routing.table import INDEX_MIN_CHILDREN, Route

VALUES = ["", "a", "b", "c"]
matcher = st.builds(
    Matcher.make,
    st.sampled_from(["team", "env"]),
    st.sampled_from(["=", "!=", "=~", "!~"]),
    st.sampled_from([*VALUES, "a|b", ".*"]),
)
child = st.builds(
    lambda ms, cont, name: Route(receiver=name, matchers=tuple(ms), continue_=cont),
    st.lists(matcher, max_size=3),
    st.booleans(),
    st.sampled_from(["r1", "r2", "r3"]),
)
labels = st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(VALUES))


def walk_every_child(route: Route, lbls: Mapping[str, str]) -> list[Route]:
    if not all(m.matches(lbls) for m in route.matchers):
        return []
    found: list[Route] = []
    for c in route.routes:
        hits = walk_every_child(c, lbls)
        found.extend(hits)
        if hits and not c.continue_:
            break
    return found or [route]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(child, min_size=INDEX_MIN_CHILDREN, max_size=30),
    st.lists(labels, min_size=1, max_size=10),
)
def test_indexed_walk_equals_walking_every_child(
    children: list[Route], label_sets: list[dict[str, str]]
) -> None:
    root = Route(receiver="root", routes=tuple(children))
    for lbls in label_sets:
        assert root.match(lbls) == walk_every_child(root, lbls)


def test_a_flat_level_keyed_by_team_is_indexed() -> None:
    children = tuple(
        Route(receiver=f"t{i}", matchers=(Matcher.make("team", "=", f"team-{i}"),))
        for i in range(20)
    )
    root = Route(receiver="root", routes=children)
    assert [r.receiver for r in root.candidates({"team": "team-7"})] == ["t7"]
    assert root.candidates({"team": "nobody"}) == []
    assert [r.receiver for r in root.match({"team": "team-7"})] == ["t7"]
    assert [r.receiver for r in root.match({"team": "nobody"})] == ["root"]
