"""meta_fetcher's domain instruments (names under ``adfatigue.``; Prometheus adds ``_total``).

* ``adfatigue.meta.requests`` {request} — HTTP requests sent to the Graph API (every attempt,
  retries included), ``outcome`` = ok | error; on errors ``error.class`` = the failure class of
  ``graph_errors.ErrorClass`` (retry, throttled, shrink, token_invalid, permanent), ``page`` for
  an undecodable body, or ``not_found`` (Meta does not know the object: an unknown ad account id, the
  caller's mistake). Meta failure ratio = errors but not_found / requests (the alert's expression).
* ``adfatigue.meta.budget.acquisitions`` {call} — budget units asked for before a request,
  ``outcome`` = granted | refused (the app budget is spent or a usage-header pause is on).
* ``adfatigue.meta.budget.limit`` {call} — calls the budget allows per window;
  ``adfatigue.meta.budget.window`` (s) — that window. Budget used over the last window =
  ``sum(increase(adfatigue_meta_budget_acquisitions_total{outcome="granted"}[1h]))`` (replicas
  share the budget, so the sum is right); remaining = limit − used.
* ``adfatigue.meta.usage`` (1) — the highest usage fraction Meta reported in its usage headers
  (``X-Business-Use-Case-Usage`` / ``X-App-Usage``; META_GRAPH_API.md §3), per ``ad_account``.
"""

from __future__ import annotations

from opentelemetry.metrics import Observation

from services.common.telemetry import meter

_m = meter("adfatigue.meta_fetcher")

requests = _m.create_counter("adfatigue.meta.requests", unit="{request}",
                             description="HTTP requests sent to the Graph API, by outcome and error class")
budget_acquisitions = _m.create_counter("adfatigue.meta.budget.acquisitions", unit="{call}",
                                        description="Meta call budget units asked for, by outcome")
OK = {"outcome": "ok"}
GRANTED, REFUSED = {"outcome": "granted"}, {"outcome": "refused"}
_usage: dict[str, float] = {}


def request_failed(error_class: str) -> None:
    requests.add(1, {"outcome": "error", "error.class": error_class})


def usage_seen(account_id: str, fraction: float) -> None:
    """Remember the latest usage fraction Meta reported for the account (read at collection time)."""
    _usage[account_id] = fraction


def observe_budget(limit_calls: int, window_s: float) -> None:
    """Gauges of the configured budget and of Meta's reported usage."""
    _m.create_observable_gauge("adfatigue.meta.budget.limit", [lambda _o: [Observation(limit_calls)]],
                               unit="{call}", description="Meta calls the budget allows per window")
    _m.create_observable_gauge("adfatigue.meta.budget.window", [lambda _o: [Observation(window_s)]],
                               unit="s", description="The budget's window")
    _m.create_observable_gauge(
        "adfatigue.meta.usage",
        [lambda _o: [Observation(v, {"ad_account": a}) for a, v in list(_usage.items())]],
        unit="1", description="Highest usage fraction Meta reported in its usage headers")
