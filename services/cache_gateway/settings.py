"""CacheGateway settings: one pydantic-settings model of the shared parts and the gateway's own.

``GatewaySettings.from_env(env, **overrides)`` reads each field's environment
variable; ``python -m services.cache_gateway`` flags override them. A bad value
raises ``SettingsError`` naming the variable, its value and what is allowed.
"""

from __future__ import annotations

from pydantic import field_validator

from services.common.attribution import AttributionSettings, InvalidAttribution
from services.common.settings import (
    AuthSettings,
    FreshnessSettings,
    LoggingSettings,
    MongoSettings,
    NotifySettings,
    SchedulerLeaseSettings,
    TlsSettings,
    setting,
)


class GatewaySettings(MongoSettings, SchedulerLeaseSettings, FreshnessSettings, AuthSettings, LoggingSettings,
                      NotifySettings, TlsSettings):
    """Everything the gateway process reads (units in the names: _s seconds)."""

    port: int = setting(50051, env="ADFATIGUE_GATEWAY_PORT", ge=0, le=65535, doc="gRPC port (0: any free port)")
    fetcher_addr: str = setting("127.0.0.1:50052", env="ADFATIGUE_FETCHER_ADDR", min_length=1,
                                allowed="host:port", doc="meta_fetcher's gRPC address")
    engine_addr: str = setting("127.0.0.1:50053", env="ADFATIGUE_ENGINE_ADDR", min_length=1,
                               allowed="host:port", doc="fatigue_engine's gRPC address")
    l1_max_bytes: int = setting(50 * 1024 * 1024, env="L1_MAX_BYTES", ge=0,
                                doc="L1 size, bytes: the hot accounts' in-memory replicas (half), memoised answers "
                                    "and fatigue results (a quarter each)")
    l1_ttl_s: float = setting(300.0, env="L1_TTL_SECONDS", ge=0,
                              doc="safety-net life of a replica or memoised answer, seconds (changes arrive by the "
                                  "change feed; due days end answers sooner)")
    fetch_lock_ttl_s: float = setting(15.0, env="GATEWAY_FETCH_LOCK_TTL_SECONDS", gt=0,
                                      doc="lifetime of an account's fetch lock in Redis without renewal, seconds "
                                          "(renewed every third of it while the fetch runs)")
    shutdown_budget_s: float = setting(20.0, env="GATEWAY_SHUTDOWN_BUDGET_SECONDS", gt=0,
                                       doc="longest stop on SIGTERM, seconds, whatever is unreachable (within "
                                           "Kubernetes' default 30 s grace)")
    shutdown_step_s: float = setting(5.0, env="GATEWAY_SHUTDOWN_STEP_SECONDS", gt=0,
                                     doc="longest wait for one step of that stop (closing the change feed, the last "
                                         "flushes, each client), seconds; a step past it is abandoned and logged")
    with_reach_cum: bool = setting(False, env="GATEWAY_WITH_REACH_CUM",
                                   doc="fetch cumulative reach too (frequency and saturation; more Meta calls)")
    attribution: str = setting("", env="ATTRIBUTION_WINDOWS", allowed="windows such as 7d_click,1d_view",
                               doc="attribution setting of every account, sent as action_attribution_windows "
                                   "(empty: Meta's current default, 7d_click,1d_view)")
    account_attribution: str = setting("", env="ACCOUNT_ATTRIBUTION_WINDOWS",
                                       allowed="act_1=1d_click;act_2=7d_click,1d_view",
                                       doc="per-account attribution settings")

    @field_validator("attribution", "account_attribution")
    @classmethod
    def _attribution(cls, value: str, info) -> str:
        try:
            AttributionSettings.parse(value, "") if info.field_name == "attribution" else \
                AttributionSettings.parse("", value)
        except InvalidAttribution as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def attribution_settings(self) -> AttributionSettings:
        """The parsed attribution settings (services/common/attribution.py)."""
        return AttributionSettings.parse(self.attribution, self.account_attribution)
