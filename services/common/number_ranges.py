"""The ranges the platform stores numbers in, checked when a value is parsed (issue 17).

- Counts (``impressions``, ``reach``, ``clicks``, ``inline_link_clicks``,
  ``reach_cum``) are protobuf ``int64`` (insights.proto) and BSON int64 in L2:
  0 <= n <= 2^63 - 1.
- Decimals (``spend``, ``actions`` values) travel as decimal strings and are
  computed with ``Decimal``; they are bounded like money in micro-units held
  in an int64 (the convention of ads APIs, e.g. Google Ads ``cost_micros``):
  at most 6 decimal places (Meta sends at most 6, META_GRAPH_API.md §1
  ``"cpm":"77.567568"``) and at most (2^63 - 1) / 10^6 =
  9,223,372,036,854.775807 in the account currency.

A value outside these ranges is a permanent data error of that field and
row, never something a retry can fix.
"""

from __future__ import annotations

from decimal import Decimal

INT64_MAX = 2**63 - 1
DECIMAL_PLACES = 6
MAX_DECIMAL = Decimal(INT64_MAX).scaleb(-DECIMAL_PLACES)


def count_problem(value: int) -> str | None:
    """Why ``value`` cannot be stored as a count (None: it can)."""
    if value < 0:
        return "is negative"
    if value > INT64_MAX:
        return f"does not fit a 64-bit integer (max {INT64_MAX})"
    return None


def decimal_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be stored as a decimal amount (None: it can)."""
    if not value.is_finite():
        return "is not a finite number"
    if value < 0:
        return "is negative"
    if value > MAX_DECIMAL:
        return f"is larger than {MAX_DECIMAL} (the stored range)"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_PLACES and value != value.quantize(Decimal(1).scaleb(-DECIMAL_PLACES)):
        return f"has more than {DECIMAL_PLACES} decimal places"
    return None
