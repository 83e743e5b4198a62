"""The settings several services share, each variable declared here once.

A service's model inherits the parts it reads (``services/<service>/settings.py``).
Units are in the field names: ``_s`` seconds, ``_days`` days, ``calls`` Meta HTTP requests.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import field_validator, model_validator

from services.common.freshness import FreshnessPolicy
from services.common.settings.base import SettingsError, SettingsModel, setting

#: Redis key prefix of one deployment (every key the services write starts with it).
DEFAULT_REDIS_KEY_PREFIX = "adfatigue:"
#: The shared Meta call budget's keys (``services/common/meta_budget.py``).
DEFAULT_BUDGET_KEY_PREFIX = "adfatigue:meta_fetcher:budget"
#: Token used against the local sandbox when META_ACCESS_TOKEN is unset (the sandbox accepts any token).
SANDBOX_DEV_TOKEN = "sandbox-dev-token"
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_GATEWAY_ADDR = "127.0.0.1:50051"


def check_host_port(value: str) -> str:
    """``value`` when it is ``host:port`` (port 1 to 65535; ``[::1]:50051`` for IPv6); ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or any(c.isspace() for c in value) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("not host:port")
    return value


def lease_key_for(redis_key_prefix: str = DEFAULT_REDIS_KEY_PREFIX) -> str:
    """The scheduler's lease key for a deployment's ``REDIS_KEY_PREFIX`` (default ``adfatigue:scheduler:leader``)."""
    return f"{redis_key_prefix}scheduler:leader"


class MongoSettings(SettingsModel):
    """Where L2 (and the token vault, audit log, demand records) live."""

    mongodb_uri: str | None = setting(None, env="MONGODB_URI", secret=True,
                                      doc="MongoDB connection string (replica set: change streams); "
                                          "`adfatigue up` passes its embedded store")
    mongodb_db: str = setting("adfatigue", env="MONGODB_DB", doc="database name", min_length=1)


class RedisSettings(SettingsModel):
    """Shared state across replicas; unset = one process keeps it in memory."""

    redis_url: str | None = setting(None, env="REDIS_URL", allowed="a URL such as redis://host:6379/0 "
                                    "(rediss://, unix:// too)",
                                    doc="locks, leader lease and Meta budget shared by replicas (unset: one process)")
    redis_key_prefix: str = setting(DEFAULT_REDIS_KEY_PREFIX, env="REDIS_KEY_PREFIX",
                                    doc="prefix of every Redis key of this deployment")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and urlparse(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("not a redis://, rediss:// or unix:// URL")
        return value


class SchedulerLeaseSettings(RedisSettings):
    """The scheduler leader's lease: the scheduler holds it, the gateway fences against it."""

    lease_key: str = setting(None, env="SCHEDULER_LEASE_KEY", min_length=1, allowed="a Redis key",
                             doc="Redis key of the scheduler's leader lease (default <REDIS_KEY_PREFIX>scheduler:leader)")

    @model_validator(mode="before")
    @classmethod
    def _default_lease_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("lease_key") is None:
            data = {**data, "lease_key": lease_key_for(data.get("redis_key_prefix") or DEFAULT_REDIS_KEY_PREFIX)}
        return data


class MetaBudgetSettings(SettingsModel):
    """Meta's app-wide call budget (DESIGN.md §1: about 200 calls an hour)."""

    budget_calls: int = setting(200, env="META_BUDGET_CALLS", ge=1,
                                doc="Meta HTTP calls the whole app may make per window")
    budget_window_s: float = setting(3600.0, env="META_BUDGET_WINDOW_S", gt=0, doc="sliding window, seconds")
    budget_key_prefix: str = setting(DEFAULT_BUDGET_KEY_PREFIX, env="META_BUDGET_KEY_PREFIX", min_length=1,
                                     doc="Redis key prefix of the shared window")


class MetaPagingSettings(SettingsModel):
    """How many rows one Meta page holds (META_GRAPH_API.md §1: connectors use limit=100)."""

    page_limit: int = setting(100, env="META_PAGE_LIMIT", ge=1,
                              doc="rows per Graph API page (also the scheduler's call estimates)")


class FreshnessSettings(SettingsModel):
    """When cached days are due again (``services/common/freshness.py``); the gateway and scheduler agree."""

    partial_interval_s: float = setting(15 * 60.0, env="FRESHNESS_PARTIAL_SECONDS", gt=0,
                                        doc="refresh interval of today's data, seconds")
    provisional_interval_s: float = setting(6 * 3600.0, env="FRESHNESS_PROVISIONAL_SECONDS", gt=0,
                                            doc="refresh interval of days inside the restatement window, seconds")
    restatement_days: int = setting(28, env="RESTATEMENT_WINDOW_DAYS", ge=0,
                                    doc="days before today Meta may still restate (attribution window)")

    @property
    def policy(self) -> FreshnessPolicy:
        return FreshnessPolicy(self.restatement_days, self.partial_interval_s, self.provisional_interval_s)


class TokenMintSettings(SettingsModel):
    """What minting a development token needs (services, and the CLI's ``adfatigue token``)."""

    jwt_hs256_secret: str = setting("", env="JWT_HS256_SECRET", secret=True,
                                    doc="shared HS256 secret (local runs; `adfatigue up` makes one)")
    jwt_audience: str | None = setting(None, env="JWT_AUDIENCE", doc="required `aud` claim (unset: not checked)")


class AuthSettings(TokenMintSettings):
    """Bearer tokens (``services/common/auth.py``): the key that verifies them, the token a service sends."""

    jwt_public_key: str = setting("", env="JWT_PUBLIC_KEY", secret=True, allowed="a PEM public key",
                                  doc="RS256/ES256 public key, PEM (production)")
    jwt_jwks_url: str | None = setting(None, env="JWT_JWKS_URL", allowed="an http(s) URL",
                                       doc="JWKS of the identity provider (RS256/ES256 keys by kid; production)")
    jwt_leeway_s: float = setting(5.0, env="JWT_LEEWAY_SECONDS", ge=0,
                                  doc="clock leeway for exp/iat/nbf, seconds (clocks are NTP-synced)")
    jwt_jwks_cooldown_s: float = setting(30.0, env="JWT_JWKS_COOLDOWN_SECONDS", ge=0,
                                         doc="least time between two JWKS re-fetches for an unknown kid, seconds")
    service_token_file: str = setting("", env="ADFATIGUE_SERVICE_TOKEN_FILE",
                                      doc="file holding the token this service sends to others, re-read per call")
    service_token: str = setting("", env="ADFATIGUE_SERVICE_TOKEN", secret=True,
                                 doc="fixed token this service sends to others")

    def require_verifier_key(self) -> None:
        """Raise SettingsError unless a key to verify callers' tokens is set."""
        if not (self.jwt_hs256_secret or self.jwt_public_key or self.jwt_jwks_url):
            raise SettingsError("set JWT_HS256_SECRET (local) or JWT_PUBLIC_KEY (production, PEM) or JWT_JWKS_URL "
                                "to verify callers' bearer tokens")

    def require_service_token(self) -> None:
        """Raise SettingsError unless this service can send a token (a file, a fixed one, or minted)."""
        if not (self.service_token_file or self.service_token or self.jwt_hs256_secret):
            raise SettingsError("set ADFATIGUE_SERVICE_TOKEN_FILE or ADFATIGUE_SERVICE_TOKEN (the token this "
                                "service sends to the services it calls), or JWT_HS256_SECRET to mint one")


class MetaGraphSettings(SettingsModel):
    """Which Graph API the fetcher calls and with what token (``adfatigue up`` reads them too)."""

    graph_url: str = setting(DEFAULT_GRAPH_URL, env="META_GRAPH_URL", allowed="an http(s) URL",
                             doc="Graph API base URL (the sandbox: http://127.0.0.1:8085)")
    access_token: str = setting(SANDBOX_DEV_TOKEN, env="META_ACCESS_TOKEN", secret=True, min_length=1,
                                doc="Meta access token when the vault has none (default: the sandbox's dev token)")

    @field_validator("graph_url")
    @classmethod
    def _graph_url_is_http(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("not an http(s) URL")
        return value


class GatewayAddressSettings(SettingsModel):
    """Where the CacheGateway answers, for those that call it (the scheduler, the CLI)."""

    gateway_addr: str = setting(DEFAULT_GATEWAY_ADDR, env="ADFATIGUE_GATEWAY_ADDR", allowed="host:port",
                                doc="the gateway's gRPC address (the CLI, when unset: the running `adfatigue up`'s)")

    @field_validator("gateway_addr")
    @classmethod
    def _gateway_addr_is_host_port(cls, value: str) -> str:
        return check_host_port(value)


class TlsSettings(SettingsModel):
    """TLS of every gRPC server and channel (``services/common/tls.py``); none set = plaintext (loopback)."""

    grpc_tls_cert: str = setting("", env="GRPC_TLS_CERT", allowed="a path to a PEM file",
                                 doc="this service's certificate chain, PEM (served; presented as client certificate)")
    grpc_tls_key: str = setting("", env="GRPC_TLS_KEY", allowed="a path to a PEM file",
                                doc="the private key of GRPC_TLS_CERT, PEM")
    grpc_tls_ca: str = setting("", env="GRPC_TLS_CA", allowed="a path to a PEM file",
                               doc="CA bundle: servers called and client certificates are verified against it")
    grpc_tls_client_auth: Literal["none", "optional", "require"] = setting(
        "none", env="GRPC_TLS_CLIENT_AUTH", doc="client-certificate verification of this service's server")
    grpc_tls_server_name: str = setting("", env="GRPC_TLS_SERVER_NAME",
                                        doc="name expected in the certificates of the servers called "
                                            "(when the address is not it)")
    grpc_health_port: int | None = setting(None, env="GRPC_HEALTH_PORT", ge=0, le=65535,
                                           doc="with TLS: plaintext port serving only gRPC health checking "
                                               "(Kubernetes probes cannot speak TLS)")

    @field_validator("grpc_tls_client_auth", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class NotifySettings(SettingsModel):
    """Where notifications of fatigue-level changes go (``services/cache_gateway/fatigue_alerts.py``)."""

    notify_webhook_url: str = setting("", env="NOTIFY_WEBHOOK_URL", secret=True, allowed="an http(s) URL",
                                      doc="Slack-compatible incoming webhook for fatigue-level changes (empty: none)")
    smtp_host: str = setting("", env="NOTIFY_SMTP_HOST", doc="SMTP server for e-mail notifications (empty: none)")
    smtp_port: int = setting(25, env="NOTIFY_SMTP_PORT", ge=1, le=65535, doc="SMTP port")
    smtp_from: str = setting("", env="NOTIFY_SMTP_FROM", doc="From address of the e-mails")
    smtp_to: str = setting("", env="NOTIFY_SMTP_TO", allowed="addresses separated by commas", doc="recipients")
    smtp_username: str = setting("", env="NOTIFY_SMTP_USERNAME", doc="SMTP login (empty: none)")
    smtp_password: str = setting("", env="NOTIFY_SMTP_PASSWORD", secret=True, doc="SMTP password")
    smtp_starttls: bool = setting(False, env="NOTIFY_SMTP_STARTTLS", doc="upgrade the SMTP connection with STARTTLS")
    page_url: str = setting("http://127.0.0.1:8080", env="NOTIFY_PAGE_URL", allowed="an http(s) URL",
                            doc="base URL of the /ad-fatigue page, for the links in notifications")
    batch_s: float = setting(30.0, env="NOTIFY_BATCH_SECONDS", ge=0,
                             doc="a batch of an account's level changes is sent after this many quiet seconds")

    @model_validator(mode="after")
    def _smtp_complete(self):
        if self.smtp_host and not (self.smtp_from and self.recipients):
            raise SettingsError("NOTIFY_SMTP_HOST is set: set NOTIFY_SMTP_FROM and NOTIFY_SMTP_TO (comma-separated) too")
        for name, url in (("NOTIFY_WEBHOOK_URL", self.notify_webhook_url), ("NOTIFY_PAGE_URL", self.page_url)):
            if url and urlparse(url).scheme not in ("http", "https"):
                raise SettingsError(f"{name} must be an http(s) URL")
        return self

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in self.smtp_to.split(",") if a.strip()]


class TelemetrySettings(SettingsModel):
    """Metrics and traces of a service process (services/common/telemetry.py). The SDK's own ``OTEL_*``
    variables (sampler, resource attributes, exporter headers, ...) are read by the SDK itself."""

    telemetry_enabled: bool = setting(True, env="ADFATIGUE_TELEMETRY",
                                      doc="off: no /metrics endpoint, no tracing, no instrumentation")
    metrics_host: str | None = setting(None, env="METRICS_HOST", doc="address of /metrics (default: the service's --host)")
    metrics_port: int = setting(0, env="METRICS_PORT", ge=-1, le=65535,
                                doc="port of the Prometheus /metrics endpoint (0: any free port, printed; -1: none)")
    otlp_endpoint: str | None = setting(None, env="OTEL_EXPORTER_OTLP_ENDPOINT",
                                        doc="OTLP/gRPC collector that receives the traces (unset: no export)")


class LoggingSettings(TelemetrySettings):
    """Log output of a service process (services/common/logs.py), and its telemetry: every service
    that logs also exports metrics and traces, so one part brings both."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "INFO", env="LOG_LEVEL", doc="lowest level written (case-insensitive)")
    log_format: Literal["json", "text"] = setting("json", env="LOG_FORMAT", doc="JSON lines, or plain text lines")
    log_file: str | None = setting(None, env="LOG_FILE",
                                   doc="write the log here, rotated daily at midnight UTC (unset: stderr)")
    log_retention_days: int = setting(30, env="LOG_RETENTION_DAYS", ge=1,
                                      doc="rotated log files kept, one per day")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value
