"""Ad account ids: accepted as ``act_123`` or ``123``, stored without the prefix."""

from __future__ import annotations

import hashlib

from services.common.input_echo import quoted


class InvalidAccountId(ValueError):
    """The account id is not ``act_<digits>`` or ``<digits>``."""


def normalise_account_id(account_id: str) -> str:
    """Return the numeric account id (no ``act_`` prefix).

    Raises InvalidAccountId with a message a person can act on.
    """
    raw = account_id or ""
    digits = raw[4:] if raw.startswith("act_") else raw
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 20:
        raise InvalidAccountId(
            f"account_id {quoted(account_id)} is not a Meta ad account id: use act_<digits> or <digits>, e.g. act_1234567890"
        )
    return digits


def stable_numeric_id(*parts: str, digits: int = 15) -> str:
    """A stable numeric id (as Meta's ids are numeric strings) derived from names.

    Used where the source has names but no ids (Ads Manager CSV exports).
    The first digit is never 0, so the id keeps its length as an integer.
    """
    h = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")
    n = h % (9 * 10 ** (digits - 1)) + 10 ** (digits - 1)
    return str(n)
