"""``GetStats`` counters, read from the gateway's OpenTelemetry instruments (``metrics.py``).

The values are this process's cumulative sums since start, the same numbers ``/metrics`` shows:
``l1_hits`` / ``l1_misses`` = ``adfatigue.cache.reads{tier=l1}`` by outcome, ``l2_*`` likewise,
``upstream_calls`` = ``adfatigue.meta.calls`` (every outcome), ``upstream_calls_avoided`` =
``adfatigue.meta.calls_avoided{reason=single_flight|other_replica}`` (calls another caller's fetch
made unnecessary), ``stale_answers`` = ``adfatigue.gateway.stale_answers``. Before
``setup_telemetry`` (or with ``OTEL_SDK_DISABLED=true``) every counter reads 0.
"""

from __future__ import annotations

from services.common import telemetry

_NAMES = ("adfatigue.cache.reads", "adfatigue.meta.calls", "adfatigue.meta.calls_avoided",
          "adfatigue.gateway.stale_answers")


def counters() -> dict[str, int]:
    """The GatewayStats counter fields (see the module doc)."""
    out = dict.fromkeys(("l1_hits", "l1_misses", "l2_hits", "l2_misses", "upstream_calls",
                         "upstream_calls_avoided", "stale_answers"), 0)
    tel = telemetry.current()
    if tel is None:
        return out
    sums = tel.sums(_NAMES)
    for attrs, value in sums["adfatigue.cache.reads"]:
        key = f"{attrs.get('tier')}_{'hits' if attrs.get('outcome') == 'hit' else 'misses'}"
        if key in out:
            out[key] += int(value)
    out["upstream_calls"] = int(sum(v for _, v in sums["adfatigue.meta.calls"]))
    out["upstream_calls_avoided"] = int(sum(v for a, v in sums["adfatigue.meta.calls_avoided"]
                                           if a.get("reason") in ("single_flight", "other_replica")))
    out["stale_answers"] = int(sum(v for _, v in sums["adfatigue.gateway.stale_answers"]))
    return out
