"""Scheduler settings: cycle, lease, Meta budget share, demand, notifications.

One pydantic-settings model (``services/common/settings``) of the shared parts
(MongoDB, Redis and the leader lease, the Meta budget and paging, freshness,
auth, logging) and the scheduler's own knobs. ``SchedulerSettings.from_env``
reads the environment; a bad value raises ``SettingsError`` (a ValueError)
naming the variable, its value and what is allowed.

The budget (DESIGN.md §1: Meta allows about 200 calls an hour for the whole
app). Calls are HTTP requests to Meta, the unit meta_fetcher's rate budget
counts (a page, a retry, an account lookup: one each).

- ``REDIS_URL`` set: the scheduler reads what is left of the fetchers' shared
  window in Redis (``META_BUDGET_KEY_PREFIX``, ``META_BUDGET_CALLS``,
  ``META_BUDGET_WINDOW_S`` - the same settings part meta_fetcher reads, so both
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

import math
from urllib.parse import urlparse

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from services.common.settings import (
    AuthSettings,
    FreshnessSettings,
    GatewayAddressSettings,
    LoggingSettings,
    MetaBudgetSettings,
    MetaPagingSettings,
    MongoSettings,
    SchedulerLeaseSettings,
    SettingsError,
    TlsSettings,
    setting,
)

__all__ = ["SchedulerSettings", "SettingsError"]


class SchedulerSettings(MongoSettings, SchedulerLeaseSettings, GatewayAddressSettings, MetaBudgetSettings,
                        MetaPagingSettings, FreshnessSettings, AuthSettings, LoggingSettings, TlsSettings):
    """All knobs of the scheduler (units in the names: _s seconds, calls = Meta HTTP requests)."""

    port: int = setting(50054, env="ADFATIGUE_SCHEDULER_PORT", ge=0, le=65535, doc="gRPC port (0: any free port)")
    interval_s: float = setting(600.0, env="SCHEDULER_INTERVAL_SECONDS", gt=0,
                                doc="time between cycles, seconds (R6: every 10 minutes)")
    lease_ttl_s: float = setting(30.0, env="SCHEDULER_LEASE_TTL_SECONDS", ge=1,
                                 doc="leader lease lifetime, seconds: a dead leader is replaced within this")
    share_calls: int = setting(150, env="SCHEDULER_BUDGET_CALLS_PER_HOUR", ge=1,
                               doc="the scheduler's part of META_BUDGET_CALLS per window")
    reserve_calls: int | None = setting(None, env="SCHEDULER_ONDEMAND_RESERVE_CALLS", ge=0,
                                        doc="calls left for on-demand reads (default: META_BUDGET_CALLS minus the share)")
    burst_cycles: float = setting(3.0, env="SCHEDULER_BURST_CYCLES", ge=1,
                                  doc="recently-read work may spend up to this many cycles' pace at once")
    demand_heartbeat_ttl_s: float = setting(60.0, env="DEMAND_HEARTBEAT_TTL_SECONDS", gt=0,
                                            doc="a gateway silent this long has no live subscribers, seconds")
    idle_after_s: float = setting(7 * 86400.0, env="SCHEDULER_IDLE_AFTER_SECONDS", gt=0,
                                  doc="accounts unread this long are not refreshed by the scheduler, seconds")
    shutdown_budget_s: float = setting(20.0, env="SCHEDULER_SHUTDOWN_BUDGET_SECONDS", gt=0,
                                       doc="longest stop on SIGTERM, seconds, whatever is unreachable (within "
                                           "Kubernetes' default 30 s grace)")
    shutdown_step_s: float = setting(5.0, env="SCHEDULER_SHUTDOWN_STEP_SECONDS", gt=0,
                                     doc="longest wait for one step of that stop (releasing the lease, the audit "
                                         "log's last entries, each client), seconds; the cycle in progress gets up "
                                         "to 8 s; a step past it is abandoned and logged")
    webhook_url: str = setting("", env="SCHEDULER_WEBHOOK_URL", secret=True,
                               allowed="an http(s) URL such as https://hooks.slack.com/services/...",
                               doc="Slack-compatible notifications (R10); may embed a secret path")
    webhook_timeout_s: float = setting(5.0, env="SCHEDULER_WEBHOOK_TIMEOUT_SECONDS", gt=0,
                                       doc="timeout of one webhook post, seconds")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = urlparse(value)
        if value and not (url.scheme in ("http", "https") and url.netloc):
            raise ValueError("not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _budget_split(self) -> "SchedulerSettings":
        if self.share_calls > self.budget_calls:
            raise PydanticCustomError("setting", "SCHEDULER_BUDGET_CALLS_PER_HOUR={share} must be between 1 and "
                                      "META_BUDGET_CALLS={app} (the scheduler's part of the app budget; 150 by "
                                      "default)", {"share": self.share_calls, "app": self.budget_calls})
        if self.reserve_calls is not None and self.reserve_calls >= self.budget_calls:
            raise PydanticCustomError("setting", "SCHEDULER_ONDEMAND_RESERVE_CALLS={reserve} must be between 0 and "
                                      "META_BUDGET_CALLS-1={top}", {"reserve": self.reserve_calls,
                                                                    "top": self.budget_calls - 1})
        return self

    @property
    def reserve(self) -> int:
        """Calls kept for on-demand reads: ``reserve_calls`` or app limit minus share."""
        if self.reserve_calls is not None:
            return self.reserve_calls
        return max(0, self.budget_calls - self.share_calls)

    @property
    def pace_calls(self) -> int:
        """The share spread evenly over the cycles of one window: share × interval / window, rounded up."""
        return max(1, math.ceil(self.share_calls * self.interval_s / self.budget_window_s))
