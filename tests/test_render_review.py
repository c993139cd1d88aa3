"""Defects found in review of the renderer: each test failed before its fix."""

from __future__ import annotations

from receiver.filters import md


def test_md_escapes_an_ordered_list_marker_with_a_visible_result() -> None:
    # CommonMark escapes only ASCII punctuation: "\1." shows its backslash and
    # "1)" starts a list just as "1." does. The marker's punctuation is escaped.
    assert md("1. Disk full") == "1\\. Disk full"
    assert md("12) Disk full") == "12\\) Disk full"
    assert md("3.") == "3\\."
    # Not a list marker (no blank after it): left as written, no stray backslash.
    assert md("10.0.0.1:9100") == "10.0.0.1:9100"
    assert md("2)x") == "2)x"
