"""``adfatigue report``: one line per ad — score, level, top signals, days to critical."""

from __future__ import annotations

import json

from google.protobuf.json_format import MessageToDict

from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, fatigue_pb2

LEVELS = {v.number: v.name.lower() for v in fatigue_pb2.FatigueLevel.DESCRIPTOR.values}


def top_signals(result: fatigue_pb2.FatigueResult, n: int = 2) -> list[str]:
    """The ``n`` available components contributing most (score x weight), as ``name=score``."""
    scored = [c for c in result.components if c.available and c.HasField("score") and c.score > 0]
    scored.sort(key=lambda c: c.score * c.weight, reverse=True)
    return [f"{c.name}={c.score:.0f}" for c in scored[:n]]


def report_rows(reply: gw.GetFatigueResponse) -> list[dict]:
    rows = []
    for r in reply.results:
        rows.append({
            "ad_id": r.ad_id, "ad_name": r.ad_name, "campaign_name": r.campaign_name, "adset_name": r.adset_name,
            "score": round(r.score, 2) if r.HasField("score") else None,
            "level": LEVELS.get(r.level, "unspecified"),
            "top_signals": top_signals(r),
            "days_to_critical": r.forecast.days_to_critical if r.forecast.HasField("days_to_critical") else None,
            "reason": r.insufficient_reason or (r.forecast.reason if not r.forecast.HasField("days_to_critical") else ""),
        })
    order = {"critical": 0, "warning": 1, "caution": 2, "healthy": 3}
    rows.sort(key=lambda x: (order.get(x["level"], 9), -(x["score"] or 0), x["ad_name"]))
    return rows


def render_table(reply: gw.GetFatigueResponse) -> str:
    rows = report_rows(reply)
    fresh = MessageToDict(reply.freshness).get("status", "FRESH")
    lines = [f"account act_{reply.account_id}  version {reply.version}  data {fresh}"
             + (f" ({reply.freshness.reason})" if reply.freshness.reason else ""),
             f"{'ad_id':<16} {'ad_name':<24} {'score':>6} {'level':<17} {'days→crit':>9}  top signals / reason"]
    for r in rows:
        score = f"{r['score']:.2f}" if r["score"] is not None else "-"
        dtc = str(r["days_to_critical"]) if r["days_to_critical"] is not None else "-"
        tail = ", ".join(r["top_signals"]) if r["score"] is not None else r["reason"]
        if len(tail) > 110:
            tail = tail[:107] + "..."  # the full reason is in --json
        lines.append(f"{r['ad_id']:<16} {r['ad_name'][:24]:<24} {score:>6} {r['level']:<17} {dtc:>9}  {tail}")
    scored = sum(1 for r in rows if r["score"] is not None)
    lines.append(f"{len(rows)} ads, {scored} scored, {len(rows) - scored} insufficient_data")
    return "\n".join(lines)


def render_json(reply: gw.GetFatigueResponse) -> str:
    return json.dumps({"account_id": reply.account_id, "version": reply.version,
                       "freshness": MessageToDict(reply.freshness), "ads": report_rows(reply)}, indent=2)
