"""The templates shipped in templates/, which render as the built-in ones do. Pure.

A user's template renders within a budget (receiver.messages.sandbox): every filter
it calls is checked, and what it makes is counted. The shipped ones are ours: each
loops over the alerts once, and what it makes grows with them, as the built-in
templates do, which render with no budget. The checks were a sixth of a render of
row 7's webhooks (bench/README.md), so a template whose text is exactly one of these
renders without them. Any change to it, a single character, and it is a user's
template again, checked as before. Still in the sandbox either way, and its output
still capped at MAX_TEMPLATE_CHARS.

The SHA-256 of each file's text; tests/messages/test_shipped.py fails when a file in
templates/ changes until its sum is written here again.
"""

from __future__ import annotations

import hashlib

SHIPPED = frozenset(
    {
        "4e1954b3650833ed56c73d150cebd1aa883d1cfbd199cde1681c0b504fd60154",  # action_card
        "12aba605428e3d775dedae6dca63f1d526d965ce05851b38aaa6cf4fe68d9bd0",  # md
        "bac595df489101a1941a025ec5dfb9cc8cc6c777a1c7bfa0ce77dc258354c0dd",  # text
    }
)


def shipped(source: str) -> bool:
    """Whether a template's text is that of a template shipped in templates/."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest() in SHIPPED
