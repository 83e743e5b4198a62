"""Scheduler settings: cycle, lease, Meta budget share, demand, notifications.

Values come from keyword arguments or, via ``from_env``, from environment
variables; every value is checked by ``validate`` and a bad one raises
``SettingsError`` (a ValueError) naming the variable and what to set instead.

The budget (DESIGN.md §1: Meta allows about 200 calls an hour for the whole
app). Calls are HTTP requests to Meta, the unit meta_fetcher's rate budget
counts (a page, a retry, an account lookup: one each).

- ``REDIS_URL`` set: the scheduler reads what is left of the fetchers' shared
  window in Redis (``META_BUDGET_KEY_PREFIX``, ``META_BUDGET_CALLS``,
  ``META_BUDGET_WINDOW_S`` - the same variables meta_fetcher reads, so both
  agree). It spends at most ``SCHEDULER_BUDGET_CALLS_PER_HOUR`` (150) per
  window itself and never takes the app below ``SCHEDULER_ONDEMAND_RESERVE_CALLS``
  calls left (default: app limit minus share = 50), which stay for on-demand
  reads of the gateway.
- ``REDIS_URL`` unset (one machine): the fetchers' window is in another
  process and cannot be read, so the scheduler assumes it may spend its
  configured share per window and counts its own calls; the rest of the
  app budget (50 of 200) is the on-demand headroom. The fetcher's own budget
  still refuses anything above 200, so the app limit holds either way.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlparse

from services.cache_gateway.demand_fencing import lease_key_for
from services.cache_gateway.freshness import FreshnessPolicy


class SettingsError(ValueError):
    """A setting a person must fix; the message names the variable."""


@dataclass(frozen=True)
class SchedulerSettings:
    """All knobs of the scheduler (units in the names: _s seconds, calls = Meta HTTP requests)."""

    interval_s: float = 600.0                    # R6: every 10 minutes
    # Leader lease (Redis). The key defaults to "<REDIS_KEY_PREFIX>scheduler:leader".
    lease_key: str = "adfatigue:scheduler:leader"
    lease_ttl_s: float = 30.0                    # a dead leader is replaced within this
    # Meta budget (module docstring).
    app_budget_calls: int = 200                  # META_BUDGET_CALLS: Meta's ~200 app calls per hour
    budget_window_s: float = 3600.0              # META_BUDGET_WINDOW_S
    budget_key_prefix: str = "adfatigue:meta_fetcher:budget"
    share_calls: int = 150                       # SCHEDULER_BUDGET_CALLS_PER_HOUR
    reserve_calls: int | None = None             # SCHEDULER_ONDEMAND_RESERVE_CALLS; None = app - share
    burst_cycles: float = 3.0                    # recently-read work may spend up to this many cycles' pace at once
    page_limit: int = 100                        # META_PAGE_LIMIT: rows per Meta page, for call estimates
    # Freshness: the same variables as the gateway, so both agree on what is due.
    partial_interval_s: float = 15 * 60
    provisional_interval_s: float = 6 * 3600
    restatement_days: int = 28
    # Demand (the gateway's demand tracker).
    demand_heartbeat_ttl_s: float = 60.0         # a gateway silent this long has no live subscribers
    idle_after_s: float = 7 * 86400              # accounts unread this long are not refreshed by the scheduler
    # Notifications (R10 "info when a refresh completes").
    webhook_url: str = field(default="", repr=False)   # Slack-compatible; may embed a secret path
    webhook_timeout_s: float = 5.0
    redis_url: str | None = None

    @property
    def reserve(self) -> int:
        """Calls kept for on-demand reads: ``reserve_calls`` or app limit minus share."""
        if self.reserve_calls is not None:
            return self.reserve_calls
        return max(0, self.app_budget_calls - self.share_calls)

    @property
    def pace_calls(self) -> int:
        """The share spread evenly over the cycles of one window: share × interval / window, rounded up."""
        return max(1, math.ceil(self.share_calls * self.interval_s / self.budget_window_s))

    @property
    def policy(self) -> FreshnessPolicy:
        return FreshnessPolicy(self.restatement_days, self.partial_interval_s, self.provisional_interval_s)

    def replace(self, **changes) -> "SchedulerSettings":
        return dataclasses.replace(self, **changes).validate()

    def validate(self) -> "SchedulerSettings":
        """Return self; raise SettingsError naming the first bad value."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise SettingsError(message)
        need(math.isfinite(self.interval_s) and self.interval_s > 0,
             f"SCHEDULER_INTERVAL_SECONDS={self.interval_s} must be > 0 (600 = every 10 minutes)")
        need(math.isfinite(self.lease_ttl_s) and self.lease_ttl_s >= 1,
             f"SCHEDULER_LEASE_TTL_SECONDS={self.lease_ttl_s} must be >= 1 (30 by default)")
        need(bool(self.lease_key.strip()), "SCHEDULER_LEASE_KEY must not be empty")
        need(self.app_budget_calls >= 1, f"META_BUDGET_CALLS={self.app_budget_calls} must be >= 1 (Meta allows ~200/h)")
        need(math.isfinite(self.budget_window_s) and self.budget_window_s > 0,
             f"META_BUDGET_WINDOW_S={self.budget_window_s} must be > 0")
        need(1 <= self.share_calls <= self.app_budget_calls,
             f"SCHEDULER_BUDGET_CALLS_PER_HOUR={self.share_calls} must be between 1 and META_BUDGET_CALLS="
             f"{self.app_budget_calls} (the scheduler's part of the app budget; 150 by default)")
        need(self.reserve_calls is None or 0 <= self.reserve_calls < self.app_budget_calls,
             f"SCHEDULER_ONDEMAND_RESERVE_CALLS={self.reserve_calls} must be between 0 and "
             f"META_BUDGET_CALLS-1={self.app_budget_calls - 1}")
        need(math.isfinite(self.burst_cycles) and self.burst_cycles >= 1, "burst_cycles must be >= 1")
        need(self.page_limit >= 1, f"META_PAGE_LIMIT={self.page_limit} must be >= 1")
        need(self.partial_interval_s > 0 and self.provisional_interval_s > 0,
             "FRESHNESS_PARTIAL_SECONDS and FRESHNESS_PROVISIONAL_SECONDS must be > 0")
        need(self.restatement_days >= 0, f"RESTATEMENT_WINDOW_DAYS={self.restatement_days} must be >= 0")
        need(self.demand_heartbeat_ttl_s > 0, f"DEMAND_HEARTBEAT_TTL_SECONDS={self.demand_heartbeat_ttl_s} must be > 0")
        need(self.idle_after_s > 0, f"SCHEDULER_IDLE_AFTER_SECONDS={self.idle_after_s} must be > 0")
        need(self.webhook_timeout_s > 0, "SCHEDULER_WEBHOOK_TIMEOUT_SECONDS must be > 0")
        if self.webhook_url:
            url = urlparse(self.webhook_url)
            need(url.scheme in ("http", "https") and bool(url.netloc),
                 "SCHEDULER_WEBHOOK_URL must be an http(s) URL such as https://hooks.slack.com/services/...")
        if self.redis_url:
            need(urlparse(self.redis_url).scheme in ("redis", "rediss", "unix"),
                 "REDIS_URL must look like redis://host:6379/0 (or rediss://, unix://)")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "SchedulerSettings":
        """Settings from environment variables, then ``overrides`` (ignored when None); validated.

        Variables: SCHEDULER_INTERVAL_SECONDS, SCHEDULER_LEASE_KEY (default
        ``<REDIS_KEY_PREFIX>scheduler:leader``), SCHEDULER_LEASE_TTL_SECONDS,
        SCHEDULER_BUDGET_CALLS_PER_HOUR, SCHEDULER_ONDEMAND_RESERVE_CALLS,
        SCHEDULER_IDLE_AFTER_SECONDS, SCHEDULER_WEBHOOK_URL,
        SCHEDULER_WEBHOOK_TIMEOUT_SECONDS, DEMAND_HEARTBEAT_TTL_SECONDS,
        META_BUDGET_CALLS, META_BUDGET_WINDOW_S, META_BUDGET_KEY_PREFIX,
        META_PAGE_LIMIT, FRESHNESS_PARTIAL_SECONDS, FRESHNESS_PROVISIONAL_SECONDS,
        RESTATEMENT_WINDOW_DAYS, REDIS_URL. Raises SettingsError.
        """
        env = os.environ if env is None else env
        spec = {
            "SCHEDULER_INTERVAL_SECONDS": ("interval_s", float),
            "SCHEDULER_LEASE_KEY": ("lease_key", str),
            "SCHEDULER_LEASE_TTL_SECONDS": ("lease_ttl_s", float),
            "SCHEDULER_BUDGET_CALLS_PER_HOUR": ("share_calls", int),
            "SCHEDULER_ONDEMAND_RESERVE_CALLS": ("reserve_calls", int),
            "SCHEDULER_IDLE_AFTER_SECONDS": ("idle_after_s", float),
            "SCHEDULER_WEBHOOK_URL": ("webhook_url", str),
            "SCHEDULER_WEBHOOK_TIMEOUT_SECONDS": ("webhook_timeout_s", float),
            "DEMAND_HEARTBEAT_TTL_SECONDS": ("demand_heartbeat_ttl_s", float),
            "META_BUDGET_CALLS": ("app_budget_calls", int),
            "META_BUDGET_WINDOW_S": ("budget_window_s", float),
            "META_BUDGET_KEY_PREFIX": ("budget_key_prefix", str),
            "META_PAGE_LIMIT": ("page_limit", int),
            "FRESHNESS_PARTIAL_SECONDS": ("partial_interval_s", float),
            "FRESHNESS_PROVISIONAL_SECONDS": ("provisional_interval_s", float),
            "RESTATEMENT_WINDOW_DAYS": ("restatement_days", int),
            "REDIS_URL": ("redis_url", str),
        }
        values: dict[str, object] = {"lease_key": lease_key_for(env.get("REDIS_KEY_PREFIX") or "adfatigue:")}
        for var, (name, kind) in spec.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = kind(raw.strip())
            except ValueError:
                what = {int: "integer", float: "number"}.get(kind, kind.__name__)
                raise SettingsError(f"environment variable {var}={raw!r} is not a valid {what}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validate()
