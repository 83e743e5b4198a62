"""The gateway's domain instruments (names under ``adfatigue.``; units per OpenTelemetry conventions).

They replace the old ``GatewayCounters`` and the counters nothing read; ``GetStats`` answers from
the same instruments (``stats.py``). In Prometheus (``_total`` / ``_seconds`` / ``_bytes``
suffixes added by the exporter):

* ``adfatigue.cache.reads`` {read} — ``tier`` = l1 | l2, ``outcome`` = hit | miss. Every
  GetInsights / GetFatigue reads L1 once, a Subscribe snapshot counts as an L1 miss (it is never
  memoised); each L1 miss reads L2 once; an L2 miss waited on Meta (L3). So the ratio below is <= 1.
  Hit ratio = ``sum(rate(adfatigue_cache_reads_total{outcome="hit"}[5m])) /
  sum(rate(adfatigue_cache_reads_total{tier="l1"}[5m]))``.
* ``adfatigue.meta.calls`` {call} — FetchInsights calls this gateway made (``outcome`` = ok |
  error, ``error.type`` = the gRPC status name on errors);
  ``adfatigue.meta.calls_avoided`` {call} — reads answered without a call of their own, by
  ``reason``: l1_fresh, l2_fresh, single_flight (joined a fetch in flight), other_replica (another
  replica fetched the days while this one waited for the lock).
  apiCallReduction = avoided / (avoided + made).
* Latency per tier: ``rpc.server.call.duration`` (s; services/common/telemetry.py) of GetInsights /
  GetFatigue carries ``tier`` = l1 | l2 | l3, the tier that answered (one measurement per call):
  ``histogram_quantile(0.99, sum by (le, tier) (rate(rpc_server_call_duration_seconds_bucket{tier!=""}[5m])))``.
* ``adfatigue.gateway.stale_answers`` {answer} — answers served STALE_* (stale-while-revalidate).
* ``adfatigue.l1.size`` (By), ``adfatigue.l1.entries`` {entry}, ``adfatigue.l1.max_size`` (By).
* ``adfatigue.subscriptions.open`` {subscription}, ``adfatigue.subscriptions.events`` {event}
  (``kind`` = snapshot | change | jump), ``adfatigue.subscriptions.delivery.duration`` (s, commit
  observed by the change feed → event handed to gRPC).
* ``adfatigue.change_feed.reconnects`` {reconnect}, ``adfatigue.lock.waits`` {wait} (services/common),
  ``adfatigue.rescore.runs`` {run} (``outcome``), ``adfatigue.l2.quarantined`` {document} (``collection``; counted by services/common/l2_schema.py),
  ``adfatigue.demand.flushes`` {flush} (``outcome``), ``adfatigue.refresh.fenced`` {refresh}.
"""

from __future__ import annotations

from services.common.telemetry import Tally, meter, prometheus_histogram

_m = meter("adfatigue.cache_gateway")

# the two counters every read moves are Tallies (observable counters: an L1 hit must stay cheap)
cache_reads = Tally(_m, "adfatigue.cache.reads", "{read}", "Cache lookups by tier (l1, l2) and outcome (hit, miss)")
meta_calls = _m.create_counter("adfatigue.meta.calls", unit="{call}",
                               description="FetchInsights calls made to meta_fetcher (Meta)")
meta_calls_avoided = Tally(_m, "adfatigue.meta.calls_avoided", "{call}",
                           "Reads answered without a Meta call of their own, by reason")
stale_answers = _m.create_counter("adfatigue.gateway.stale_answers", unit="{answer}",
                                  description="Answers served STALE_REVALIDATING or STALE_UPSTREAM_ERROR")
# a change to N subscribers adds N events: a Tally too (the fan-out pays per delivery)
subscription_events = Tally(_m, "adfatigue.subscriptions.events", "{event}", "Subscribe events handed to gRPC, by kind")
subscriptions_open = _m.create_up_down_counter("adfatigue.subscriptions.open", unit="{subscription}",
                                               description="Subscribe streams open on this replica")
# one measurement per delivery (a change to N subscribers: N): prometheus_client, as the RPC durations
delivery_duration = prometheus_histogram("adfatigue_subscriptions_delivery_duration_seconds",
                                         "Change committed (seen by the change feed) to event sent")
change_feed_reconnects = _m.create_counter("adfatigue.change_feed.reconnects", unit="{reconnect}",
                                           description="Change stream reopened after an error")
rescore_runs = _m.create_counter("adfatigue.rescore.runs", unit="{run}",
                                 description="Background rescoring runs by outcome (ok, error)")
demand_flushes = _m.create_counter("adfatigue.demand.flushes", unit="{flush}",
                                   description="Demand-record flushes to L2 by outcome (ok, error)")
refresh_fenced = _m.create_counter("adfatigue.refresh.fenced", unit="{refresh}",
                                   description="Refresh calls refused: the caller's fencing token is outdated")

L1, L2, L3 = "l1", "l2", "l3"
HIT, MISS = {"outcome": "hit"}, {"outcome": "miss"}
#: attributes of an L2 read (adfatigue.cache.reads), shared by the read path and reads joined in flight
L2_HIT, L2_MISS = {"tier": L2, **HIT}, {"tier": L2, **MISS}


def observe_l1(l1) -> None:
    """Gauges of an L1 cache's size, read at collection time."""
    from opentelemetry.metrics import Observation

    _m.create_observable_gauge("adfatigue.l1.size", [lambda _o: [Observation(l1.bytes_used)]], unit="By",
                               description="Bytes held by L1")
    _m.create_observable_gauge("adfatigue.l1.max_size", [lambda _o: [Observation(l1.max_bytes)]], unit="By",
                               description="L1 byte budget")
    _m.create_observable_gauge("adfatigue.l1.entries", [lambda _o: [Observation(len(l1))]], unit="{entry}",
                               description="Entries held by L1")
