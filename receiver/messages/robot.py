"""The group robot's copy of a message, and the digest a storm's copies merge into. Pure.

A robot body is not a work notification's `msg`: its keys are camelCase
(`actionCard`, `singleURL`, `btns`), it carries `at: {atUserIds}`, and it may be
20,000 bytes. The copy is rendered by the same Renderer and templates, within its
own budget, then converted; `@userid` is written in the text, since DingTalk only
highlights a mention that appears there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from receiver.messages.budget import MIN_BUDGET, msg_size, shrink
from receiver.messages.filters import ELLIPSIS, WORDS
from receiver.messages.render import Renderer
from receiver.model import Notification

ROBOT_MAX_BYTES = 20_000  # the robot API's limit for the whole JSON body
KEY_SLACK = 16  # action_card -> actionCard renames add at most this many bytes
_TEXT = {"markdown": "text", "text": "content", "actionCard": "text"}


def mention_line(userids: Sequence[str]) -> str:
    return " ".join(f"@{u}" for u in userids)


def convert(msg: dict[str, Any], mentions: Sequence[str]) -> dict[str, Any]:
    """A work notification's `msg` as a robot body, @mentioning `mentions`."""
    at = mention_line(mentions)
    kind = msg.get("msgtype")
    body: dict[str, Any]
    if kind == "text":
        text = msg["text"]["content"] + (f"\n{at}" if at else "")
        body = {"msgtype": "text", "text": {"content": text}}
    elif kind == "action_card":
        card = msg["action_card"]
        out: dict[str, Any] = {"title": card["title"], "text": card["markdown"] + _md_at(at)}
        if "single_url" in card:
            out["singleTitle"], out["singleURL"] = card["single_title"], card["single_url"]
        else:
            out["btnOrientation"] = card.get("btn_orientation", "0")
            out["btns"] = [
                {"title": b["title"], "actionURL": b["action_url"]}
                for b in card.get("btn_json_list", [])
            ]
        body = {"msgtype": "actionCard", "actionCard": out}
    else:
        md = msg["markdown"]
        body = {"msgtype": "markdown", "markdown": {"title": md["title"],
                                                    "text": md["text"] + _md_at(at)}}  # fmt: skip
    body["at"] = {"atUserIds": list(mentions), "isAtAll": False}
    return body


def _md_at(at: str) -> str:
    return f"\n\n{at}" if at else ""


def robot_copy(
    renderer: Renderer,
    n: Notification,
    *,
    template: str | None,
    msgtype: str,
    mentions: Sequence[str],
    now: datetime,
    max_bytes: int = ROBOT_MAX_BYTES,
    note: str = "",
) -> dict[str, Any]:
    """The robot body for `n`: rendered within `max_bytes`, mentions and all; `note` is
    an escalation step's line on top, as on the step's work notification."""
    overhead = msg_size(convert({"msgtype": "text", "text": {"content": ""}}, mentions))
    budget = max(MIN_BUDGET, max_bytes - overhead - KEY_SLACK)
    msg = renderer.render(
        n, template=template, msgtype=msgtype, now=now, max_bytes=budget, note=note
    ).msg
    body = convert(msg, mentions)
    while msg_size(body) > max_bytes:  # a great many mentions: cut the message, keep them
        budget = max(MIN_BUDGET, budget - (msg_size(body) - max_bytes))
        smaller = shrink(msg, budget)
        if smaller is None:
            break
        msg, body = smaller, convert(smaller, mentions)
    return body


def parts(body: dict[str, Any]) -> tuple[str, str]:
    """A robot body's title and text."""
    kind = str(body.get("msgtype"))
    inner = body.get(kind) or {}
    text = str(inner.get(_TEXT.get(kind, "text"), ""))
    return str(inner.get("title", "") or text.split("\n", 1)[0][:64]), text


def mentions_of(body: dict[str, Any]) -> list[str]:
    return [str(u) for u in (body.get("at") or {}).get("atUserIds") or []]


def digest(
    bodies: Sequence[dict[str, Any]], *, language: str = "zh", max_bytes: int = ROBOT_MAX_BYTES
) -> dict[str, Any]:
    """One robot body for several: the first whole, then as many of the rest as fit,
    then how many more there were. Every mention stays in `at`.

    The first is never dropped; it is cut only if it alone fills the body.
    """
    first = bodies[0]
    if len(bodies) == 1:
        return first
    kind = str(first.get("msgtype"))
    title, _ = parts(first)
    title = f"{title} (+{len(bodies) - 1})"
    everyone = list(dict.fromkeys(u for b in bodies for u in mentions_of(b)))
    sep = "\n\n----\n\n" if kind == "text" else "\n\n---\n\n"
    words = WORDS.get(language, WORDS["zh"])

    def build(texts: list[str], hidden: int) -> dict[str, Any]:
        text = sep.join(texts)
        if hidden:
            more = words["more_messages"].format(n=hidden)
            unmentioned = [u for u in everyone if f"@{u}" not in text]
            text += f"\n\n{more}" + (f"\n\n{mention_line(unmentioned)}" if unmentioned else "")
        out: dict[str, Any] = json.loads(json.dumps(first))  # a deep copy of the lead
        out[kind]["title" if kind != "text" else "content"] = title if kind != "text" else text
        if kind != "text":
            out[kind][_TEXT.get(kind, "text")] = text
        out["at"] = {"atUserIds": everyone, "isAtAll": False}
        return out

    texts = [parts(first)[1]]
    for i, body in enumerate(bodies[1:], start=1):
        candidate = build([*texts, parts(body)[1]], len(bodies) - i - 1)
        if msg_size(candidate) > max_bytes:
            break
        texts.append(parts(body)[1])
    out = build(texts, len(bodies) - len(texts))
    lead = texts[0]
    while lead and msg_size(out) > max_bytes:  # the first alone is too big with "more": cut it
        over = msg_size(out) - max_bytes
        lead = lead[: max(0, len(lead) - over - 1)]
        out = build([lead + ELLIPSIS], len(bodies) - 1)
    return out
