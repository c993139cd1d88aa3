"""Fit a DingTalk message into its byte budget. Pure.

A message is built from parts (title, body, tail, buttons). `fit` searches for the
most alerts, then the longest values, that fit; `hard_fit` is the last resort that
cuts the body, then drops the buttons and the "more" link, then cuts the title, so
the result never exceeds the budget, whatever a template produced. The uniqueness
line is never cut.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from receiver.messages.filters import ELLIPSIS
from receiver.messages.oa import OaExtras

# Below this, not even an empty markdown message with its uniqueness line is safe.
MIN_BUDGET = 256
TITLE_CHARS = 64  # DingTalk's limit for an action_card title; used for every type
BUTTON_CHARS = 20
VALUE_CAP = 256  # characters per label/annotation value once a message is too big
# An alert rarely renders to fewer bytes (the default templates: 200-300), so a group
# of more than budget // ALERT_BYTES_AT_LEAST alerts is not rendered whole at first.
ALERT_BYTES_AT_LEAST = 100


def compact(msg: dict[str, Any]) -> str:
    """`msg` as compact JSON: what DingTalk counts, and what the outbox stores."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


def msg_size(msg: dict[str, Any]) -> int:
    """Bytes of the compact UTF-8 JSON of `msg`, as DingTalk counts them."""
    return len(compact(msg).encode("utf-8"))


@dataclass(frozen=True)
class Parts:
    msgtype: str  # "markdown" | "text" | "action_card"
    title: str
    body: str
    more: str  # the "…N more" line with its link; cut only when nothing else helps
    stamp: str  # the uniqueness line: never cut
    buttons: tuple[tuple[str, str], ...] = ()  # (title, url), action_card only
    more_plain: str = ""  # the "…N more" line without its link
    oa: OaExtras | None = None  # msgtype oa: head, form, status bar, link

    def msg(self) -> dict[str, Any]:
        text = self.body + self.more + self.stamp
        if self.msgtype == "oa" and self.oa is not None:
            return self.oa.msg(self.title, text)
        if self.msgtype == "text":
            return {"msgtype": "text", "text": {"content": text}}
        if self.msgtype == "action_card" and self.buttons:
            card: dict[str, Any] = {"title": self.title, "markdown": text}
            if len(self.buttons) == 1:
                card["single_title"], card["single_url"] = self.buttons[0]
            else:
                card["btn_orientation"] = "0"
                card["btn_json_list"] = [{"title": t, "action_url": u} for t, u in self.buttons]
            return {"msgtype": "action_card", "action_card": card}
        # action_card needs a button; without one it is sent as markdown.
        return {"msgtype": "markdown", "markdown": {"title": self.title, "text": text}}

    def size(self) -> int:
        """msg_size(self.msg()), worked out once: a fit asks each build's size twice or more."""
        found: int | None = self.__dict__.get("_size")
        if found is None:
            found = len(self.text().encode("utf-8"))
            object.__setattr__(self, "_size", found)  # frozen, so the size never changes
        return found

    def text(self) -> str:
        """compact(self.msg()), made once: made to size the build, stored for the one kept."""
        found: str | None = self.__dict__.get("_text")
        if found is None:
            found = compact(self.msg())
            object.__setattr__(self, "_text", found)
        return found


@dataclass
class SizeHint:
    """What earlier fits of one template learned: a message of k alerts is about
    `base + per_alert * k` bytes. Only where `fit` starts its search: a wrong hint
    costs renders, never changes what `fit` returns."""

    base: float = 0.0
    per_alert: float = 0.0

    def guess(self, total: int, budget: int) -> int | None:
        if self.per_alert <= 0:
            return None
        room = budget - self.base
        if room >= self.per_alert * total:  # all of them
            return total
        if room < self.per_alert:  # not even one (and no -inf from a tiny per_alert)
            return 1
        return int(room // self.per_alert)  # between 1 and total

    def learn(self, sizes: dict[int, int]) -> None:
        """From the sizes of uncut renders (alerts -> bytes) of one group."""
        if len(sizes) < 2:
            return
        lo, hi = min(sizes), max(sizes)
        per = (sizes[hi] - sizes[lo]) / (hi - lo)
        if per > 0:
            self.base, self.per_alert = sizes[lo] - per * lo, per


def fit(
    build: Callable[[int, int | None], Parts],
    total: int,
    budget: int,
    hint: SizeHint | None = None,
) -> tuple[Parts, int]:
    """The parts showing the most alerts (then the longest values) within `budget`.

    `build(k, cap)` renders the first k alerts with every value cut to `cap`
    characters (None: uncut). Returns the parts and k. The result may still be over
    the budget when even one alert with empty values is too big; `hard_fit` it.
    `hint`, when given, is where the search starts, and learns from this fit.
    """
    built: dict[tuple[int, int | None], Parts] = {}
    sizes: dict[int, int] = {}  # uncut renders: alerts -> bytes

    def build_once(k: int, cap: int | None) -> Parts:  # each size is rendered once
        if (k, cap) not in built:
            built[(k, cap)] = build(k, cap)
            if cap is None:
                sizes[k] = built[(k, cap)].size()
        return built[(k, cap)]

    try:
        return _fit(build, build_once, total, budget, hint)
    finally:
        if hint is not None:
            hint.learn(sizes)


def _fit(
    build: Callable[[int, int | None], Parts],
    build_once: Callable[[int, int | None], Parts],
    total: int,
    budget: int,
    hint: SizeHint | None,
) -> tuple[Parts, int]:
    # A group of one template's alerts is sized like the last one: with a hint, two
    # renders (k fits, k + 1 does not) settle a group that is too big, not three.
    guess = hint.guess(total, budget) if hint is not None and total else None
    if guess is not None:
        if build_once(guess, None).size() <= budget and (
            guess == total or build_once(guess + 1, None).size() > budget
        ):
            return build_once(guess, None), guess

    # The whole group, or for a big one the first few alerts: rendering all of a
    # 500-alert group only to learn that it is far too big is most of the work.
    first = min(total, budget // ALERT_BYTES_AT_LEAST)
    at_first = build_once(first, None).size()
    if first == total and (total == 0 or at_first <= budget):
        return build_once(total, None), total
    # Alerts are about the same size: a straight line through two renders guesses
    # how many fit, and the search from there takes about four renders, not
    # log2(total) + 2.
    guess = max(1, min(total, first * budget // at_first))
    at_guess = build_once(guess, None).size()
    per_alert = (at_first - at_guess) / (first - guess) if guess != first else 0
    if per_alert > 0:
        guess = max(1, min(total, guess + int((budget - at_guess) // per_alert)))
    for cap in (None, VALUE_CAP):
        k = _largest_from(_fits(build_once, cap, budget), 1, total, guess)
        if k:
            return build_once(k, cap), k
    # One alert alone is too big even with values cut to VALUE_CAP: cut them shorter.
    c = _largest(lambda c: build(1, c).size() <= budget, 0, VALUE_CAP)
    return build(1, c), 1


def _fits(
    build: Callable[[int, int | None], Parts], cap: int | None, budget: int
) -> Callable[[int], bool]:
    return lambda k: build(k, cap).size() <= budget


def _largest_from(ok: Callable[[int], bool], lo: int, hi: int, guess: int) -> int:
    """As `_largest`, trying `guess` and its neighbour first."""
    if ok(guess):
        return guess if guess == hi or not ok(guess + 1) else _largest(ok, guess + 1, hi)
    return _largest(ok, lo, guess - 1) if guess > lo else 0


def _largest(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest x in [lo, hi] with ok(x), assuming ok is monotone; 0 if none."""
    if not ok(lo):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cut_to(parts: Parts, field: str, budget: int) -> Parts:
    """Cut one text field (keeping a trailing ellipsis) so that the parts fit, if it can."""
    text: str = getattr(parts, field)

    def with_len(n: int) -> Parts:
        value = text[:n] + ELLIPSIS if n < len(text) else text
        return replace(parts, **{field: value})  # type: ignore[arg-type]

    n = _largest(lambda n: with_len(n).size() <= budget, 0, len(text))
    if n == 0 and with_len(0).size() > budget:
        return replace(parts, **{field: ""})  # type: ignore[arg-type]
    return with_len(n)


def shrink(msg: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """A rendered `msg` cut to a smaller budget, keeping its last (uniqueness) line.

    For a message DingTalk refused as too long: the outbox keeps the rendered msg,
    not the alert, so it is cut here rather than rendered again. None when it is
    already at the minimum, or is of a kind this does not know.
    """
    budget = max(budget, MIN_BUDGET)
    kind = msg.get("msgtype")
    buttons: tuple[tuple[str, str], ...] = ()
    if kind == "markdown":
        title, text = msg["markdown"]["title"], msg["markdown"]["text"]
    elif kind == "text":
        title, text = "", msg["text"]["content"]
    elif kind == "action_card":
        card = msg["action_card"]
        title, text = card["title"], card["markdown"]
        if "single_url" in card:
            buttons = ((card["single_title"], card["single_url"]),)
        else:
            buttons = tuple((b["title"], b["action_url"]) for b in card.get("btn_json_list", []))
    else:
        return None
    if msg_size(msg) <= budget:
        return None
    body, newline, stamp = text.rpartition("\n")
    if len(stamp.encode()) > budget // 4:  # not a uniqueness line (or none): cut it all
        body, newline, stamp = text, "", ""
    parts = Parts(str(kind), title, body, "", newline + stamp, buttons)
    return hard_fit(parts, budget).msg()


RESENT_MARK = " ↻"
_BODY = {"markdown": "text", "text": "content", "action_card": "markdown"}


def resent(msg: dict[str, Any]) -> dict[str, Any] | None:
    """A rendered `msg` whose uniqueness line ends with RESENT_MARK, for a second send.

    DingTalk delivers identical content to a user once a day, so a copy sent again to
    those it refused must differ from the first. None when it already carries the mark
    (a message is sent again once), or is of a kind this does not know.
    """
    kind = str(msg.get("msgtype"))
    if kind == "oa" and isinstance(msg.get("oa"), dict):
        body = msg["oa"].get("body")
        if not isinstance(body, dict) or "content" not in body:
            return None
        content = str(body["content"])
        if content.endswith(RESENT_MARK):
            return None
        return {**msg, "oa": {**msg["oa"], "body": {**body, "content": content + RESENT_MARK}}}
    if kind not in _BODY or kind not in msg:
        return None
    text = str(msg[kind].get(_BODY[kind], ""))
    if text.endswith(RESENT_MARK):
        return None
    return {**msg, kind: {**msg[kind], _BODY[kind]: text + RESENT_MARK}}


def hard_fit(parts: Parts, budget: int) -> Parts:
    """Make the parts fit by cutting, in order: body, buttons, more link, more, title."""
    if budget < MIN_BUDGET:
        raise ValueError(f"message budget {budget} is below the minimum of {MIN_BUDGET} bytes")
    for step in ("body", "buttons", "more_plain", "more", "title"):
        if parts.size() <= budget:
            return parts
        if step == "buttons":
            parts = replace(parts, buttons=())
        elif step == "more_plain":
            parts = replace(parts, more=parts.more_plain)
        else:
            parts = _cut_to(parts, step, budget)
    if parts.size() > budget:  # pragma: no cover - MIN_BUDGET makes this unreachable
        raise AssertionError("an empty message does not fit the budget")
    return parts
