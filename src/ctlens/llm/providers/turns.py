"""Conversation history made acceptable to every provider (starts with user, roles alternate).

Example:
    >>> alternating_turns([("assistant", "hi"), ("user", "a"), ("user", "b"), ("assistant", "c")])
    [('user', 'a\\n\\nb'), ('assistant', 'c')]
"""

from __future__ import annotations


def alternating_turns(history: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop leading assistant turns, merge consecutive same-role turns, end on an assistant turn."""
    out: list[tuple[str, str]] = []
    for role, text in history:
        if role not in ("user", "assistant") or not text:
            continue
        if not out and role == "assistant":
            continue
        if out and out[-1][0] == role:
            out[-1] = (role, out[-1][1] + "\n\n" + text)
        else:
            out.append((role, text))
    if out and out[-1][0] == "user":
        out.pop()
    return out
