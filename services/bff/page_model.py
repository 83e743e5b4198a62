"""The page model: everything the /ad-fatigue page shows, built from one version of the data.

Input: the rows of GetInsights and the results of GetFatigue at the *same*
version, plus the account's currency and time zone. Output: a JSON-ready dict
(shapes documented in ``schemas.py``). Units: ratios as percentages with two
decimals (link CTR = inline_link_clicks / impressions x 100), CPM and CPA in
the account currency (CPM = spend / impressions x 1000), frequency =
impressions / reach of the day (daily; Meta's definition), spend as a decimal
string. Component raw values and thresholds come from FATIGUE_SPEC.md v1.1
(the fatigue_engine computes them; ``services/common/fatigue_text`` words them, as the CLI does).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.fatigue_text import component_text, main_reasons, money
from services.common.pb.adfatigue.v1 import fatigue_pb2, insights_pb2

LEVELS = {fatigue_pb2.INSUFFICIENT_DATA: "insufficient_data", fatigue_pb2.HEALTHY: "healthy",
          fatigue_pb2.CAUTION: "caution", fatigue_pb2.WARNING: "warning", fatigue_pb2.CRITICAL: "critical"}
LEVEL_ORDER = ("critical", "warning", "caution", "healthy", "insufficient_data")
STATUS = {insights_pb2.FRESH: "fresh", insights_pb2.STALE_REVALIDATING: "stale_revalidating",
          insights_pb2.STALE_UPSTREAM_ERROR: "stale_upstream_error"}
CLASSES = {insights_pb2.FINAL: "final", insights_pb2.PROVISIONAL: "provisional", insights_pb2.PARTIAL: "partial"}
#: reasons named per ad: the components contributing most (score x weight), as ``adfatigue report`` words them
REASONS = 3


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.2f} %"


def _money(x: float | None, currency: str) -> str:
    return "–" if x is None else money(x, currency)


# component name -> (label, baseline detail, recent detail, formatter kind)
COMPONENTS = {
    "ctr_decay": ("Link CTR", "ctr_baseline", "ctr_recent", "pct"),
    "cpm_inflation": ("CPM", "cpm_baseline", "cpm_recent", "money"),
    "cpa_inflation": ("CPA", "cpa_baseline", "cpa_recent", "money"),
    "reach_saturation": ("New reach per impression", "nrr_baseline", "nrr_recent", "pct"),
    "frequency": ("Frequency", None, None, "number"),
    "ranking_drop": ("Meta quality rankings", None, None, "levels"),
}


def component_view(c: fatigue_pb2.FatigueComponent, currency: str) -> dict:
    """One component with its baseline and recent values, and in words (``fatigue_text``, as the CLI says it)."""
    label, b_key, r_key, kind = COMPONENTS.get(c.name, (c.name.replace("_", " "), None, None, "number"))
    before = c.details.get(b_key) if b_key else None
    after = c.details.get(r_key) if r_key else None
    fmt = pct if kind == "pct" else (lambda v: _money(v, currency))
    return {"name": c.name, "label": label, "available": c.available,
            "score": round(c.score, 2) if c.HasField("score") else None, "weight": c.weight,
            "raw_value": c.raw_value if c.HasField("raw_value") else None,
            "unavailable_reason": c.unavailable_reason,
            "before": before, "after": after, "before_text": fmt(before) if b_key else None,
            "after_text": fmt(after) if r_key else None, "text": component_text(c, currency)}


def _series(rows: dict[str, insights_pb2.InsightRow], currency: str) -> dict:
    days = sorted(rows)
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    n = (last - first).days + 1
    out = {"first_day": days[0], "impressions": [None] * n, "link_ctr_pct": [None] * n, "cpm": [None] * n,
           "frequency": [None] * n}
    for day, r in rows.items():
        i = (date.fromisoformat(day) - first).days
        imp = r.impressions if r.HasField("impressions") else None
        out["impressions"][i] = imp
        if imp:
            if r.HasField("inline_link_clicks"):
                out["link_ctr_pct"][i] = round(r.inline_link_clicks / imp * 100, 3)
            if r.HasField("spend"):
                out["cpm"][i] = round(float(r.spend) / imp * 1000, 2)
            if r.HasField("reach") and r.reach > 0:
                out["frequency"][i] = round(imp / r.reach, 3)
    if all(v is None for v in out["frequency"]):
        out["frequency"] = None  # not available for this ad
    return out


def ad_view(ad_id: str, rows: dict[str, insights_pb2.InsightRow], result: fatigue_pb2.FatigueResult | None,
            currency: str) -> dict:
    latest = rows[max(rows)]  # names as of the most recent row
    spend = sum((Decimal(r.spend) for r in rows.values() if r.HasField("spend")), Decimal(0))
    impressions = sum(r.impressions for r in rows.values() if r.HasField("impressions"))
    clicks = sum(r.inline_link_clicks for r in rows.values() if r.HasField("inline_link_clicks"))
    view = {"ad_id": ad_id, "ad_name": latest.ad_name, "adset_id": latest.adset_id, "adset_name": latest.adset_name,
            "campaign_id": latest.campaign_id, "campaign_name": latest.campaign_name,
            "spend": f"{spend:.2f}", "impressions": impressions, "link_clicks": clicks,
            "link_ctr_pct": round(clicks / impressions * 100, 2) if impressions else None,
            "delivery_days": len(rows), "series": _series(rows, currency)}
    if result is None:
        view.update(level="insufficient_data", score=None, components=[], reasons=["not scored yet"],
                    days_to_critical=None, forecast_reason="not scored yet", scored_version=None)
        return view
    components = [component_view(c, currency) for c in result.components]
    view.update(level=LEVELS.get(result.level, "insufficient_data"),
                score=round(result.score, 2) if result.HasField("score") else None,
                components=components, reasons=main_reasons(result, currency, n=REASONS),
                days_to_critical=(result.forecast.days_to_critical
                                  if result.forecast.HasField("days_to_critical") else None),
                forecast_reason=result.forecast.reason, scored_version=result.insights_version)
    return view


def _zone(name: str):
    try:
        return ZoneInfo(name) if name else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def freshness_view(f: insights_pb2.Freshness, tz_name: str) -> dict:
    tz = _zone(tz_name)
    classes: dict[str, dict] = {}
    for d in f.days:
        entry = classes.setdefault(CLASSES.get(d.freshness_class, "unknown"), {"days": 0, "due": 0, "oldest": None})
        entry["days"] += 1
        entry["due"] += int(d.due)
        at = d.fetched_at.ToDatetime(timezone.utc).isoformat() if d.HasField("fetched_at") else None
        if at and (entry["oldest"] is None or at < entry["oldest"]):
            entry["oldest"] = at
    as_of = f.as_of.ToDatetime(timezone.utc) if f.HasField("as_of") else None
    return {"status": STATUS.get(f.status, "unknown"), "reason": f.reason,
            "as_of": as_of.isoformat() if as_of else None,
            "as_of_local": as_of.astimezone(tz).strftime("%Y-%m-%d %H:%M") if as_of else None,
            "classes": classes}


def summary(ads: list[dict]) -> dict:
    per_level = {level: 0 for level in LEVEL_ORDER}
    at_risk = Decimal(0)
    for ad in ads:
        per_level[ad["level"]] = per_level.get(ad["level"], 0) + 1
        if ad["level"] in ("warning", "critical"):
            at_risk += Decimal(ad["spend"])
    return {"ads": len(ads), "per_level": per_level, "spend_at_risk": f"{at_risk:.2f}",
            "spend": f"{sum((Decimal(a['spend']) for a in ads), Decimal(0)):.2f}"}


def _sort_key(ad: dict):
    return (-(ad["score"] if ad["score"] is not None else -1), ad["ad_name"], ad["ad_id"])


def build(account: dict, since: str, until: str, version: int, rows, results, freshness, stored_days=None) -> dict:
    """The page model of ``account`` ({"id","name","currency","timezone"}) at ``version``; ``stored_days``: the
    gateway's ``GetFatigueResponse.stored_days`` (set only when no ad has a row in the range), so the page can
    say where the account's data lies."""
    by_ad: dict[str, dict[str, insights_pb2.InsightRow]] = defaultdict(dict)
    for r in rows:
        by_ad[r.ad_id][r.date_start] = r
    scored = {r.ad_id: r for r in results}
    currency = account.get("currency", "")
    ads = sorted((ad_view(ad_id, ad_rows, scored.get(ad_id), currency) for ad_id, ad_rows in by_ad.items()),
                 key=_sort_key)
    return {"account": account, "range": {"since": since, "until": until}, "version": version,
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "freshness": freshness_view(freshness, account.get("timezone", "")), "summary": summary(ads), "ads": ads,
            "stored_days": {"since": stored_days.since, "until": stored_days.until}
            if stored_days is not None and stored_days.since else None}


def diff(old: dict, new: dict) -> dict:
    """What a page at ``old`` applies to show ``new``: changed or new ads, removed ad ids, summary, freshness."""
    before = {a["ad_id"]: a for a in old["ads"]}
    after_ids = {a["ad_id"] for a in new["ads"]}
    return {"version": new["version"], "from_version": old["version"], "generated_at": new["generated_at"],
            "freshness": new["freshness"], "summary": new["summary"], "stored_days": new.get("stored_days"),
            "ads": [a for a in new["ads"] if before.get(a["ad_id"]) != a],
            "removed": sorted(set(before) - after_ids), "order": [a["ad_id"] for a in new["ads"]]}
