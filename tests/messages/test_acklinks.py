"""Acknowledge tokens: signed, naming notification, userid and expiry; anything else refused."""

from __future__ import annotations

import pytest

from receiver.messages.acklinks import AckLinks, AckToken, BadToken, sign, verify

KEY = "k" * 32
NOW = 1_800_000_000.0  # any instant: verify takes `now`, it reads no clock


def test_a_token_round_trips() -> None:
    token = sign(KEY, 42, "manager4220", NOW + 60)
    assert verify(KEY, token, NOW) == AckToken(42, "manager4220", int(NOW + 60))
    odd = sign(KEY, 1, "用户.01/x", NOW + 60)  # any userid: it is encoded, not split on
    assert verify(KEY, odd, NOW).userid == "用户.01/x"


def altered(token: str) -> list[str]:
    nid, user, exp, sig = token.split(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    return [
        f"{int(nid) + 1}.{user}.{exp}.{sig}",  # another notification
        f"{nid}.{sign(KEY, 1, 'other', 0).split('.')[1]}.{exp}.{sig}",  # another person
        f"{nid}.{user}.{int(exp) + 86400}.{sig}",  # a longer life
        f"{nid}.{user}.{exp}.{flipped}",
        f"{nid}.{user}.{exp}",
        "",
        "not-a-token",
        "1.2.3.4.5",
    ]  # fmt: skip


def test_altered_forged_and_expired_tokens_are_refused() -> None:
    token = sign(KEY, 42, "manager4220", NOW + 60)
    for bad in altered(token):
        with pytest.raises(BadToken):
            verify(KEY, bad, NOW)
    with pytest.raises(BadToken):
        verify("another key", token, NOW)
    with pytest.raises(BadToken):
        verify(KEY, token, NOW + 60)  # expired at its expiry
    with pytest.raises(BadToken):
        verify("", token, NOW)


def test_links_are_personal_and_the_stand_in_is_never_shorter() -> None:
    links = AckLinks("https://rx.example/", KEY, 7, NOW + 3600)
    users = ["a", "a-much-longer-userid-0123456789"]
    stand_in = links.placeholder(users)
    assert all(len(links.url(u)) <= len(stand_in) for u in users)
    assert links.url("a").startswith("https://rx.example/ack/7.")
    mine = links.personal(f"[ack]({stand_in})", stand_in, "a")
    assert verify(KEY, mine.split("/ack/")[1].rstrip(")"), NOW).userid == "a"
