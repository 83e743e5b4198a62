"""meta_fetcher settings: where Meta is, how hard to page, retry and pacing knobs.

Every delay is a setting (seconds) so tests can make retries instant. Values
come from keyword arguments or, via ``from_env``, from environment variables
(``META_*``, ``REDIS_URL``, ``MONGODB_*``, ``TOKEN_*``, ``PROVIDER_CSV*``).
Secrets (``access_token``, ``app_secret``, ``token_keys``) are excluded from
``repr`` so they never reach logs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Mapping

#: Token used against the local sandbox when META_ACCESS_TOKEN is unset (the sandbox accepts any token).
SANDBOX_DEV_TOKEN = "sandbox-dev-token"
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
#: DESIGN.md R12 pins v23.0; META_GRAPH_API.md §6 notes Meta auto-upgrades it (X-Ad-Api-Version-Warning).
DEFAULT_API_VERSION = "v23.0"
#: Settings whose values are never shown (repr, error messages).
SECRET_SETTINGS = frozenset({"access_token", "app_secret", "token_keys", "mongodb_uri"})


@dataclass(frozen=True)
class FetcherSettings:
    """Configuration of the Graph client and servicer (units in the names: _s = seconds)."""

    graph_url: str = DEFAULT_GRAPH_URL
    api_version: str = DEFAULT_API_VERSION
    access_token: str = field(default=SANDBOX_DEV_TOKEN, repr=False)
    app_secret: str | None = field(default=None, repr=False)
    # Paging (META_GRAPH_API.md §1: connectors use limit=100).
    page_limit: int = 100
    min_page_limit: int = 5          # "shrink" errors halve the limit down to this
    max_pages: int = 1000            # hard cap per fetch
    # Delivering ads per account and day a query can rightly have: with the range and the page size it gives
    # each query's page cap (graph_client.PageReader.page_cap; 28 days x 100 ads at limit 100 -> 29 pages).
    max_ads_per_day: int = 100
    # Async report fallback (META_GRAPH_API.md §2), used when sync paging cannot shrink further.
    async_fallback: bool = True
    async_poll_initial_s: float = 2.0
    async_poll_max_s: float = 30.0
    async_timeout_s: float = 600.0
    # HTTP.
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    # Retries (DESIGN.md R7: exponential backoff with jitter, 3 retries).
    retries: int = 3
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_jitter_s: float = 1.0
    throttle_min_wait_s: float = 5.0         # wait before retrying a throttle that gave no regain time (§3: 5 s factor)
    throttle_max_wait_s: float = 30.0        # longest in-call wait for a throttle; longer -> RESOURCE_EXHAUSTED
    throttle_default_retry_s: float = 300.0  # told to callers when Meta gives no regain time (dev tier block, §3)
    # Proactive pacing on usage headers (META_GRAPH_API.md §3: >= 85 % slow down).
    usage_pause_pct: float = 85.0
    usage_pause_s: float = 120.0
    usage_max_inline_wait_s: float = 0.0     # wait this long inside a call before refusing it
    # Rate budget (DESIGN.md §1: ~200 app calls per hour).
    budget_calls: int = 200
    budget_window_s: float = 3600.0
    redis_url: str | None = None
    budget_key_prefix: str = "adfatigue:meta_fetcher:budget"
    # Account metadata (time zone, currency) cache.
    account_info_ttl_s: float = 6 * 3600.0
    # Token vault (DESIGN.md R9; services.meta_fetcher.token_vault): on when token_keys and mongodb_uri are set.
    app_id: str | None = None                # META_APP_ID: client_id of fb_exchange_token (META_GRAPH_API.md §5)
    mongodb_uri: str | None = field(default=None, repr=False)
    mongodb_db: str = "adfatigue"
    token_keys: str | None = field(default=None, repr=False)   # "kid1:base64key,kid2:base64key"
    token_active_key: str | None = None
    token_refresh_before_s: float = 7 * 86400.0    # exchange a token this long before it expires
    token_refresh_interval_s: float = 3600.0       # how often the refresher looks for due tokens
    # Cumulative reach (FATIGUE_SPEC.md inputs; META_GRAPH_API.md §1 time_ranges).
    reach_ranges_per_call: int = 30          # time_ranges per request [unverified: Meta's cap is not documented]
    reach_page_limit: int = 500              # rows per page of a reach query (three small fields per row)
    # Large pulls (META_GRAPH_API.md §2): split sync ranges; go async up front from this many days (0 = never).
    sync_max_days: int = 90
    async_min_days: int = 0
    # Accounts served from Ads Manager CSV exports instead of Meta (services.providers.csv_replay).
    provider_csv: str | None = None          # "act_1=/path/a.csv,act_2=/path/b.csv"
    provider_csv_timezone: str = "Asia/Kuala_Lumpur"
    provider_csv_currency: str = "MYR"

    def replace(self, **changes) -> "FetcherSettings":
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs or error messages."""
        return tuple(s for s in (self.access_token, self.app_secret) if s)

    @property
    def vault_enabled(self) -> bool:
        """True when tokens are read from the MongoDB vault (TOKEN_KEYS and MONGODB_URI both set)."""
        return bool(self.token_keys and self.mongodb_uri)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "FetcherSettings":
        """Settings from environment variables, then ``overrides`` (ignored when None).

        Variables: META_GRAPH_URL, META_API_VERSION, META_ACCESS_TOKEN,
        META_APP_SECRET, META_PAGE_LIMIT, META_MAX_PAGES, META_MAX_ADS_PER_DAY, META_TIMEOUT_S,
        META_RETRIES, META_BACKOFF_INITIAL_S, META_BACKOFF_MAX_S,
        META_THROTTLE_MAX_WAIT_S, META_THROTTLE_MIN_WAIT_S, META_USAGE_PAUSE_PCT, META_USAGE_PAUSE_S,
        META_BUDGET_CALLS, META_BUDGET_WINDOW_S, META_BUDGET_KEY_PREFIX, REDIS_URL,
        META_APP_ID, MONGODB_URI, MONGODB_DB, TOKEN_KEYS, TOKEN_ACTIVE_KEY,
        META_TOKEN_REFRESH_BEFORE_S, META_TOKEN_REFRESH_INTERVAL_S, META_REACH_RANGES_PER_CALL,
        META_REACH_PAGE_LIMIT, META_SYNC_MAX_DAYS, META_ASYNC_MIN_DAYS, PROVIDER_CSV,
        PROVIDER_CSV_TIMEZONE, PROVIDER_CSV_CURRENCY.
        Raises ValueError naming a variable that does not parse.
        """
        env = os.environ if env is None else env
        spec = {
            "META_GRAPH_URL": ("graph_url", str), "META_API_VERSION": ("api_version", str),
            "META_ACCESS_TOKEN": ("access_token", str), "META_APP_SECRET": ("app_secret", str),
            "META_PAGE_LIMIT": ("page_limit", int), "META_MAX_PAGES": ("max_pages", int),
            "META_MAX_ADS_PER_DAY": ("max_ads_per_day", int),
            "META_TIMEOUT_S": ("timeout_s", float), "META_RETRIES": ("retries", int),
            "META_BACKOFF_INITIAL_S": ("backoff_initial_s", float), "META_BACKOFF_MAX_S": ("backoff_max_s", float),
            "META_THROTTLE_MAX_WAIT_S": ("throttle_max_wait_s", float),
            "META_THROTTLE_MIN_WAIT_S": ("throttle_min_wait_s", float),
            "META_USAGE_PAUSE_PCT": ("usage_pause_pct", float), "META_USAGE_PAUSE_S": ("usage_pause_s", float),
            "META_BUDGET_CALLS": ("budget_calls", int), "META_BUDGET_WINDOW_S": ("budget_window_s", float),
            "META_BUDGET_KEY_PREFIX": ("budget_key_prefix", str), "REDIS_URL": ("redis_url", str),
            "META_APP_ID": ("app_id", str), "MONGODB_URI": ("mongodb_uri", str), "MONGODB_DB": ("mongodb_db", str),
            "TOKEN_KEYS": ("token_keys", str), "TOKEN_ACTIVE_KEY": ("token_active_key", str),
            "META_TOKEN_REFRESH_BEFORE_S": ("token_refresh_before_s", float),
            "META_TOKEN_REFRESH_INTERVAL_S": ("token_refresh_interval_s", float),
            "META_REACH_RANGES_PER_CALL": ("reach_ranges_per_call", int),
            "META_REACH_PAGE_LIMIT": ("reach_page_limit", int),
            "META_SYNC_MAX_DAYS": ("sync_max_days", int), "META_ASYNC_MIN_DAYS": ("async_min_days", int),
            "PROVIDER_CSV": ("provider_csv", str), "PROVIDER_CSV_TIMEZONE": ("provider_csv_timezone", str),
            "PROVIDER_CSV_CURRENCY": ("provider_csv_currency", str),
        }
        values: dict[str, object] = {}
        for var, (name, kind) in spec.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = kind(raw)
            except ValueError:
                shown = "(hidden)" if name in SECRET_SETTINGS else repr(raw)
                raise ValueError(f"environment variable {var}={shown} is not a valid {kind.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
