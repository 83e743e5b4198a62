"""Meta's wire format: rows to Graph API JSON, and Graph API error bodies.

Facts (META_GRAPH_API.md §1, §3):

- every metric is a JSON **string** (``"impressions":"10441"``, ``"spend":"158.72"``,
  ``"ctr":"4.864865"``), ``actions`` is a list of ``{"action_type","value"}``
  with string values;
- a field not asked for is not returned; ``date_start``/``date_stop`` always are;
- a key with no data is left out (``actions`` when there were none);
- ``account_id`` has no ``act_`` prefix; ids are numeric strings;
- rankings are enums (``ABOVE_AVERAGE`` ... ``UNKNOWN``);
- errors are ``{"error":{"message","type","code","error_subcode","fbtrace_id",...}}``,
  throttling included, with HTTP 400 (not 429).
"""

from __future__ import annotations

import secrets
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from services.common.attribution import DEFAULT_ATTRIBUTION
from services.common.insight_row import InsightRow

SIX = Decimal("0.000001")


def _num(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _ratio(num: Decimal | int | None, den: Decimal | int | None, scale: int = 1) -> str | None:
    if num is None or den is None or den == 0:
        return None
    return format((Decimal(num) * scale / Decimal(den)).quantize(SIX), "f")


def _action_value(value: Decimal) -> str:
    """An action value as Meta writes it: a count is an integer string ("12", never "12.0")."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


#: The sandbox's attribution model: the share of an ad's conversions each window counts (a click window
#: counts every conversion within its days after a click, a view window adds those after a view only).
#: Made-up but monotone shares, so a longer window never counts fewer conversions.
ATTRIBUTION_SHARE = {"1d_click": Decimal("0.5"), "7d_click": Decimal("0.8"), "28d_click": Decimal("0.9"),
                     "dda": Decimal("0.85"), "1d_view": Decimal("0.1"), "1d_ev": Decimal("0.05")}
VIEW_WINDOWS = frozenset({"1d_view", "1d_ev"})
#: Actions that are counted on the platform, not attributed (the same under every setting).
UNATTRIBUTED_ACTIONS = frozenset({"link_click", "post_engagement", "page_engagement", "video_view"})


def attribution_share(windows: tuple[str, ...]) -> Decimal:
    """Share of conversions a setting counts: the longest click window plus the view windows (at most 1)."""
    clicks = [ATTRIBUTION_SHARE[w] for w in windows if w not in VIEW_WINDOWS]
    views = sum((ATTRIBUTION_SHARE[w] for w in windows if w in VIEW_WINDOWS), Decimal(0))
    return min(Decimal(1), max(clicks, default=Decimal(0)) + views)


def attributed(value: Decimal, windows: tuple[str, ...] | None) -> Decimal:
    """A stored conversion value (counted under Meta's default setting) under ``windows`` (None: the default)."""
    if windows is None or windows == DEFAULT_ATTRIBUTION:
        return value
    scaled = value * attribution_share(windows) / attribution_share(DEFAULT_ATTRIBUTION)
    if value == value.to_integral_value():
        return scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return scaled.quantize(SIX, rounding=ROUND_HALF_UP)


def _actions(row: InsightRow, windows: tuple[str, ...] | None = None) -> list[dict[str, str]] | None:
    """``actions`` as Meta sends it; with ``action_attribution_windows`` each conversion carries the value under
    the setting and one key per window (``{"action_type","value","7d_click","1d_view"}``)."""
    if row.actions is None:
        return None
    out = []
    for action_type, value in sorted(row.actions.items()):
        if action_type in UNATTRIBUTED_ACTIONS or windows is None:
            out.append({"action_type": action_type, "value": _action_value(value)})
            continue
        item = {"action_type": action_type, "value": _action_value(attributed(value, windows))}
        for window in windows:
            item[window] = _action_value(attributed(value, (window,)))
        out.append(item)
    return out


#: Field name -> function(row, account) -> wire value (None = leave the key out).
FIELD_RENDERERS: dict[str, Callable[[InsightRow, Any], object | None]] = {
    "account_id": lambda r, a: r.account_id,
    "account_name": lambda r, a: a.name,
    "account_currency": lambda r, a: a.currency,
    "ad_id": lambda r, a: r.ad_id,
    "ad_name": lambda r, a: r.ad_name,
    "adset_id": lambda r, a: r.adset_id,
    "adset_name": lambda r, a: r.adset_name,
    "campaign_id": lambda r, a: r.campaign_id,
    "campaign_name": lambda r, a: r.campaign_name,
    "impressions": lambda r, a: None if r.impressions is None else _num(r.impressions),
    "reach": lambda r, a: None if r.reach is None else _num(r.reach),
    "clicks": lambda r, a: None if r.clicks is None else _num(r.clicks),
    "inline_link_clicks": lambda r, a: None if r.inline_link_clicks is None else _num(r.inline_link_clicks),
    "spend": lambda r, a: None if r.spend is None else _num(r.spend),
    "actions": lambda r, a: _actions(r),
    "quality_ranking": lambda r, a: r.quality_ranking,
    "engagement_rate_ranking": lambda r, a: r.engagement_rate_ranking,
    "conversion_rate_ranking": lambda r, a: r.conversion_rate_ranking,
    # Derived ratios, as Meta computes them over the row's own period. ``ctr`` is a percent of all clicks.
    "ctr": lambda r, a: _ratio(r.clicks, r.impressions, 100),
    "inline_link_click_ctr": lambda r, a: _ratio(r.inline_link_clicks, r.impressions, 100),
    "cpm": lambda r, a: _ratio(r.spend, r.impressions, 1000),
    "cpc": lambda r, a: _ratio(r.spend, r.clicks),
    "frequency": lambda r, a: _ratio(r.impressions, r.reach),
}

#: Fields returned when the request names none [unverified: Meta's documented default is "basic metrics"].
DEFAULT_FIELDS = ("account_id", "impressions", "spend")


def render_row(row: InsightRow, account: Any, fields: list[str],
               attribution: tuple[str, ...] | None = None) -> dict[str, object]:
    """One Graph API insights row with only ``fields`` (+ dates); keys without data left out; conversions
    under ``attribution`` (the query's ``action_attribution_windows``; None: Meta's default setting)."""
    out: dict[str, object] = {}
    for name in fields:
        value = _actions(row, attribution) if name == "actions" else FIELD_RENDERERS[name](row, account)
        if value is not None:
            out[name] = value
    out["date_start"] = row.date_start.isoformat()
    out["date_stop"] = row.date_stop.isoformat()
    return out


def fbtrace_id() -> str:
    """A random trace id like Meta's ``fbtrace_id`` (opaque)."""
    return secrets.token_urlsafe(8)


def error_body(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    type_: str = "OAuthException",
    is_transient: bool | None = None,
    user_title: str | None = None,
    user_msg: str | None = None,
) -> dict[str, object]:
    """A Graph API error body (graph-api/guides/error-handling, META_GRAPH_API.md §3)."""
    err: dict[str, object] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        err["error_subcode"] = subcode
    if is_transient is not None:
        err["is_transient"] = is_transient
    if user_title:
        err["error_user_title"] = user_title
    if user_msg:
        err["error_user_msg"] = user_msg
    err["fbtrace_id"] = fbtrace_id()
    return {"error": err}


def unknown_object_message(object_id: str) -> str:
    """Meta's text for code 100 / subcode 33."""
    return (
        f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation. Please read the Graph API documentation "
        "at https://developers.facebook.com/docs/graph-api"
    )
