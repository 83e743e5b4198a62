"""BFF settings on the project's settings layer (``services/common/settings``): ``BFF_*`` plus the
shared auth, logging / telemetry (``LOG_*``, ``METRICS_*``, ``OTEL_*``) and TLS parts.

Every setting has a default that works for ``adfatigue up`` on one machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, field_validator

from services.common.settings import AuthSettings, LoggingSettings, TlsSettings, setting

REPO_WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
_ACCOUNTS = TypeAdapter(dict[str, list[str]])
LOCAL_URLS = ("http://localhost", "http://127.0.0.1", "http://[::1]")


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


class BffSettings(AuthSettings, LoggingSettings, TlsSettings):
    gateway_addr: str = setting("127.0.0.1:50051", env="BFF_GATEWAY_ADDR", doc="CacheGateway host:port (gRPC)")
    host: str = setting("127.0.0.1", env="BFF_HOST", doc="address the BFF listens on")
    port: int = setting(8080, env="BFF_PORT", ge=0, le=65535, doc="port (0: any free one; the bound one is printed)")
    public_url: str = setting("", env="BFF_PUBLIC_URL",
                              doc="URL people open, e.g. https://insights.example.com (default http://HOST:PORT)")
    # -- sign-in ---------------------------------------------------------------------------------
    sign_in: Literal["link", "proxy-header"] = setting(
        "link", env="BFF_SIGN_IN", doc="link: one-time links from `adfatigue up` (local); proxy-header: an "
                                       "authenticating reverse proxy (oauth2-proxy + OIDC) names the user")
    proxy_user_header: str = setting("X-Forwarded-Email", env="BFF_PROXY_USER_HEADER",
                                     doc="proxy-header mode: the header naming the signed-in user")
    proxy_trusted_ips: str = setting("127.0.0.1,::1", env="BFF_PROXY_TRUSTED_IPS",
                                     doc="proxy-header mode: comma-separated peers whose header is believed")
    user_accounts_json: str = setting(
        "{}", env="BFF_USER_ACCOUNTS", allowed='JSON, e.g. {"ann@example.com": ["act_1"], "*": []}',
        doc='proxy-header mode: user -> ad accounts; key "*" applies to every signed-in user')
    operators: str = setting("", env="BFF_OPERATORS", doc="proxy-header mode: comma-separated operator users")
    sign_in_used_links: Path | None = setting(
        None, env="BFF_SIGN_IN_USED_LINKS",
        doc="JSON file keeping redeemed links' jti and signed-out sessions' ids until they expire, so neither "
            "works again after a restart (adfatigue up: <data dir>/sign-in-used-links.json; unset: memory only)")
    session_secret: str = setting("", env="BFF_SESSION_SECRET", secret=True,
                                  doc="signs session cookies (default: derived from JWT_HS256_SECRET)")
    session_max_age_s: int = setting(8 * 3600, env="BFF_SESSION_MAX_AGE_S", ge=60, doc="session lifetime, seconds")
    cookie_secure: bool | None = setting(None, env="BFF_COOKIE_SECURE",
                                         doc="Secure cookies (default: on unless the page is on localhost)")
    # -- gateway calls ----------------------------------------------------------------------------
    gateway_token_ttl_s: int = setting(300, env="BFF_GATEWAY_TOKEN_TTL_S", ge=120, le=900,
                                       doc="lifetime of the user-scoped token sent to the gateway, seconds")
    gateway_signing_key: str = setting("", env="BFF_GATEWAY_SIGNING_KEY", secret=True,
                                       allowed="a PEM private key (RSA: RS256, EC P-256: ES256)",
                                       doc="production: signs the user-scoped gateway tokens; the gateway's JWKS "
                                           "(JWT_JWKS_URL) publishes its public key (default: JWT_HS256_SECRET)")
    gateway_signing_kid: str = setting("", env="BFF_GATEWAY_SIGNING_KID",
                                       doc="key id of BFF_GATEWAY_SIGNING_KEY in that JWKS (the tokens' kid header)")
    gateway_timeout_s: float = setting(30.0, env="BFF_GATEWAY_TIMEOUT_S", gt=0, doc="deadline of a gateway call, s")
    # -- live stream ------------------------------------------------------------------------------
    heartbeat_s: float = setting(15.0, env="BFF_HEARTBEAT_S", gt=0,
                                 doc="SSE comment heartbeat interval, seconds (proxies keep the stream open)")
    retry_ms: int = setting(2000, env="BFF_RETRY_MS", ge=100, doc="SSE `retry:` sent to browsers, milliseconds")
    resubscribe_max_s: float = setting(5.0, env="BFF_RESUBSCRIBE_MAX_S", gt=0,
                                       doc="longest wait between two attempts to re-open the gateway stream, s")
    # -- the page ---------------------------------------------------------------------------------
    web_dist: Path = setting(REPO_WEB_DIST, env="BFF_WEB_DIST", doc="the built page (npm run build in web/)")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return not self.base_url.startswith(LOCAL_URLS)

    @field_validator("user_accounts_json")
    @classmethod
    def _user_accounts(cls, value: str) -> str:
        _ACCOUNTS.validate_json(value or "{}")
        return value

    @property
    def user_accounts(self) -> dict[str, list[str]]:
        return _ACCOUNTS.validate_json(self.user_accounts_json or "{}")

    @property
    def trusted_proxies(self) -> list[str]:
        return _items(self.proxy_trusted_ips)

    @property
    def operator_users(self) -> list[str]:
        return _items(self.operators)
