"""meta_fetcher settings: where Meta is, how hard to page, retry and pacing knobs.

One pydantic-settings model (``services/common/settings``) composed of the shared
parts (MongoDB for the token vault, Redis and the Meta budget, paging, logging)
and the fetcher's own knobs below. Every delay is a setting (seconds) so tests
can make retries instant. ``FetcherSettings(...)`` takes defaults and keywords;
``FetcherSettings.from_env(env, **overrides)`` reads the environment variables
named in each field (``META_*``, ``TOKEN_*``, ``PROVIDER_CSV*`` and the shared
ones) and raises ``SettingsError`` (a ValueError) naming a bad variable, its
value and what is allowed. Secrets (``access_token``, ``app_secret``,
``token_keys``, ``mongodb_uri``) are excluded from ``repr`` and never shown in errors.
"""

from __future__ import annotations

from pydantic import field_validator

from services.common.settings import (
    AuthSettings,
    LoggingSettings,
    MetaBudgetSettings,
    MetaGraphSettings,
    MetaPagingSettings,
    MongoSettings,
    RedisSettings,
    TlsSettings,
    setting,
)
from services.common.settings.parts import DEFAULT_GRAPH_URL, SANDBOX_DEV_TOKEN  # noqa: F401 (re-exported)

#: DESIGN.md R12 pins v23.0; META_GRAPH_API.md §6 notes Meta auto-upgrades it (X-Ad-Api-Version-Warning).
DEFAULT_API_VERSION = "v23.0"


class FetcherSettings(MongoSettings, RedisSettings, MetaGraphSettings, MetaBudgetSettings, MetaPagingSettings,
                      LoggingSettings, AuthSettings, TlsSettings):
    """Configuration of the Graph client and servicer (units in the names: _s = seconds)."""

    # graph_url, access_token: MetaGraphSettings.
    api_version: str = setting(DEFAULT_API_VERSION, env="META_API_VERSION", pattern=r"^v\d+\.\d+$",
                               allowed="a version such as v23.0", doc="Graph API version (pinned; Meta upgrades retired ones)")
    app_secret: str | None = setting(None, env="META_APP_SECRET", secret=True,
                                     doc="app secret: appsecret_proof on every call, token exchange")
    app_id: str | None = setting(None, env="META_APP_ID",
                                 doc="client_id of fb_exchange_token (long-lived token exchange)")
    operator: str = setting("", env="ADFATIGUE_OPERATOR",
                            doc="who runs token_admin, for the audit log (empty: the login name)")
    # Paging (page_limit: MetaPagingSettings).
    min_page_limit: int = setting(5, env="META_MIN_PAGE_LIMIT", ge=1,
                                  doc="'reduce data' errors halve the page limit down to this")
    max_pages: int = setting(1000, env="META_MAX_PAGES", ge=1, doc="hard cap of pages per fetch")
    # with the range and the page size it gives each query's page cap (graph_client.PageReader.page_cap;
    # 28 days x 100 ads at limit 100 -> 29 pages). An assumption with headroom: the sample account delivers at
    # most 16 ads a day; raise it for bigger accounts.
    max_ads_per_day: int = setting(100, env="META_MAX_ADS_PER_DAY", ge=1,
                                   doc="delivering ads per account and day a query can rightly have")
    # Async report fallback (META_GRAPH_API.md §2), used when sync paging cannot shrink further.
    async_fallback: bool = setting(True, env="META_ASYNC_FALLBACK", doc="fall back to async report jobs")
    async_poll_initial_s: float = setting(2.0, env="META_ASYNC_POLL_INITIAL_S", gt=0,
                                          doc="first wait between async job polls, seconds")
    async_poll_max_s: float = setting(30.0, env="META_ASYNC_POLL_MAX_S", gt=0,
                                      doc="longest wait between async job polls, seconds")
    async_timeout_s: float = setting(600.0, env="META_ASYNC_TIMEOUT_S", ge=0,
                                     doc="give up on an async job after this long, seconds")
    # HTTP.
    timeout_s: float = setting(60.0, env="META_TIMEOUT_S", gt=0, doc="HTTP read timeout per call, seconds")
    connect_timeout_s: float = setting(5.0, env="META_CONNECT_TIMEOUT_S", gt=0, doc="HTTP connect timeout, seconds")
    # Retries (DESIGN.md R7: exponential backoff with jitter, 3 retries).
    retries: int = setting(3, env="META_RETRIES", ge=0, doc="retries of a transient failure (exponential backoff with jitter)")
    backoff_initial_s: float = setting(1.0, env="META_BACKOFF_INITIAL_S", ge=0, doc="first backoff, seconds")
    backoff_max_s: float = setting(30.0, env="META_BACKOFF_MAX_S", ge=0, doc="longest backoff, seconds")
    backoff_jitter_s: float = setting(1.0, env="META_BACKOFF_JITTER_S", ge=0, doc="random jitter added, seconds")
    throttle_min_wait_s: float = setting(5.0, env="META_THROTTLE_MIN_WAIT_S", ge=0,
                                         doc="wait before retrying a throttle that gave no regain time, seconds")
    throttle_max_wait_s: float = setting(30.0, env="META_THROTTLE_MAX_WAIT_S", ge=0,
                                         doc="longest in-call wait for a throttle, seconds; longer -> RESOURCE_EXHAUSTED")
    throttle_default_retry_s: float = setting(300.0, env="META_THROTTLE_DEFAULT_RETRY_S", ge=0,
                                              doc="retry-after told to callers when Meta gives no regain time, seconds")
    # Proactive pacing on usage headers (META_GRAPH_API.md §3: >= 85 % slow down).
    usage_pause_pct: float = setting(85.0, env="META_USAGE_PAUSE_PCT", gt=0, le=100,
                                     doc="pause calls once a usage header reaches this percentage")
    usage_pause_s: float = setting(120.0, env="META_USAGE_PAUSE_S", ge=0, doc="length of that pause, seconds")
    usage_max_inline_wait_s: float = setting(0.0, env="META_USAGE_MAX_INLINE_WAIT_S", ge=0,
                                             doc="wait this long inside a call before refusing it, seconds")
    # Account metadata (time zone, currency) cache.
    account_info_ttl_s: float = setting(6 * 3600.0, env="META_ACCOUNT_INFO_TTL_S", ge=0,
                                        doc="how long an account's time zone and currency are cached, seconds")
    # Token vault (DESIGN.md R9; services.meta_fetcher.token_vault): on when token_keys and mongodb_uri are set.
    token_keys: str | None = setting(None, env="TOKEN_KEYS", secret=True, allowed="kid1:base64key,kid2:base64key",
                                     doc="vault encryption keys (turns the token vault on with MONGODB_URI)")
    token_active_key: str | None = setting(None, env="TOKEN_ACTIVE_KEY", doc="key id new vault entries use")
    token_refresh_before_s: float = setting(7 * 86400.0, env="META_TOKEN_REFRESH_BEFORE_S", ge=0,
                                            doc="exchange a token this long before it expires, seconds")
    token_refresh_interval_s: float = setting(3600.0, env="META_TOKEN_REFRESH_INTERVAL_S", gt=0,
                                              doc="how often the refresher looks for due tokens, seconds")
    # Cumulative reach (FATIGUE_SPEC.md inputs; META_GRAPH_API.md §1 time_ranges).
    reach_ranges_per_call: int = setting(30, env="META_REACH_RANGES_PER_CALL", ge=1,
                                         doc="time_ranges per reach request [unverified: Meta's cap is not documented]")
    reach_page_limit: int = setting(500, env="META_REACH_PAGE_LIMIT", ge=1, doc="rows per page of a reach query")
    # Large pulls (META_GRAPH_API.md §2): split sync ranges; go async up front from this many days (0 = never).
    sync_max_days: int = setting(90, env="META_SYNC_MAX_DAYS", ge=1, doc="longest range of one sync query, days")
    async_min_days: int = setting(0, env="META_ASYNC_MIN_DAYS", ge=0,
                                  doc="ranges this long go async up front, days (0 = never)")
    # Accounts served from Ads Manager CSV exports instead of Meta (services.providers.csv_replay).
    providers: str = setting("ads_manager_csv,meta", env="PROVIDERS", min_length=1,
                             allowed="registered provider names, comma-separated (services/meta_fetcher/"
                                     "provider_registry.py)",
                             doc="providers asked in this order whether they serve an account; the first that "
                                 "does serves it")
    provider_csv: str | None = setting(None, env="PROVIDER_CSV", allowed="act_1=/path/a.csv,act_2=/path/b.csv",
                                       doc="accounts served from Ads Manager CSV exports instead of Meta")
    provider_csv_timezone: str = setting("Asia/Kuala_Lumpur", env="PROVIDER_CSV_TIMEZONE",
                                         doc="time zone of those accounts (IANA name)")
    provider_csv_currency: str = setting("MYR", env="PROVIDER_CSV_CURRENCY", doc="currency of those accounts")
    # Process.
    shutdown_grace_s: float = setting(30.0, env="META_SHUTDOWN_GRACE_S", ge=0,
                                      doc="on SIGTERM, how long in-flight Meta calls may finish, seconds")

    @field_validator("providers")
    @classmethod
    def _registered(cls, value: str) -> str:
        from services.meta_fetcher.provider_registry import REGISTRY

        unknown = [n.strip() for n in value.split(",") if n.strip() and n.strip() not in REGISTRY]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not registered (registered: {', '.join(sorted(REGISTRY))})")
        return value

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs or error messages."""
        return tuple(s for s in (self.access_token, self.app_secret) if s)

    @property
    def vault_enabled(self) -> bool:
        """True when tokens are read from the MongoDB vault (TOKEN_KEYS and MONGODB_URI both set)."""
        return bool(self.token_keys and self.mongodb_uri)
