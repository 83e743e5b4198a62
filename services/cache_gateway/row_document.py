"""InsightRow <-> the MongoDB document body stored in L2.

Numbers are stored exactly: counts as integers, money and action values as
decimal strings (BSON has no arbitrary-precision decimal that survives every
driver the same way). Unknown fields are left out, never stored as 0.
``content_hash`` fingerprints the values so an unchanged re-read does not bump
the account version (issue 4).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal

from services.common.insight_row import InsightRow

_TEXT = ("ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name",
         "quality_ranking", "engagement_rate_ranking", "conversion_rate_ranking")
_INTS = ("impressions", "reach", "clicks", "inline_link_clicks", "reach_cum")


class CorruptDocument(ValueError):
    """An L2 document that does not decode; it is quarantined and re-fetched (R11)."""


def encode_row(row: InsightRow) -> dict:
    """The ``row`` sub-document for one InsightRow (identity fields are stored beside it)."""
    body: dict = {}
    for name in _TEXT:
        value = getattr(row, name)
        if value:
            body[name] = value
    for name in _INTS:
        value = getattr(row, name)
        if value is not None:
            body[name] = int(value)
    if row.spend is not None:
        body["spend"] = format(row.spend, "f")
    if row.actions is not None:
        body["actions"] = {k: format(v, "f") for k, v in sorted(row.actions.items())}
    if row.action_attribution_windows:  # part of the row's identity: a new setting changes the hash (issue 17)
        body["attribution"] = ",".join(row.action_attribution_windows)
    return body


def content_hash(body: dict) -> str:
    """A stable fingerprint of an encoded row's values."""
    return hashlib.blake2b(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), digest_size=16).hexdigest()


def decode_row(doc: dict) -> InsightRow:
    """Rebuild an InsightRow from an L2 document; raises CorruptDocument."""
    try:
        body = doc["row"]
        day = date.fromisoformat(doc["date"])
        kwargs = {name: body.get(name) for name in _TEXT}
        for name in _INTS:
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name}={value!r}")
            kwargs[name] = value
        spend = Decimal(body["spend"]) if "spend" in body else None
        actions = {k: Decimal(v) for k, v in body["actions"].items()} if "actions" in body else None
        attribution = tuple(body["attribution"].split(",")) if body.get("attribution") else ()
        return InsightRow(
            account_id=doc["account_id"], ad_id=doc["ad_id"], date_start=day, date_stop=day,
            spend=spend, actions=actions, fetched_at=doc.get("fetched_at"), action_attribution_windows=attribution,
            **kwargs,
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise CorruptDocument(f"L2 document {doc.get('_id')!r} does not decode: {exc}") from exc
