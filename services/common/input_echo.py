"""Caller input quoted in error messages, cut short (a 10 KB id must not come back as 10 KB of error).

    raise InvalidAccountId(f"account_id {quoted(value)} is not ...")

``quoted(value)`` is ``repr(value)`` cut to at most ``MAX_ECHO_CHARS`` (200)
characters, ending in ``…(+N chars)`` when cut, so a person still sees where
their input went wrong.
"""

from __future__ import annotations

#: The most characters of caller input any error message repeats.
MAX_ECHO_CHARS = 200


def quoted(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr(value)``, at most ``limit`` characters long."""
    text = repr(value)
    if len(text) <= limit:
        return text
    marker = f"…(+{len(text) - limit} chars)"
    keep = max(0, limit - len(marker))
    return text[:keep] + f"…(+{len(text) - keep} chars)"
