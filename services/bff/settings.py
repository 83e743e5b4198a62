"""BFF settings (pydantic-settings): environment variables ``BFF_*`` plus the shared JWT ones.

Every setting has a default that works for ``adfatigue up`` on one machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


class BffSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BFF_", extra="ignore")

    gateway_addr: str = Field("127.0.0.1:50051", description="CacheGateway host:port (gRPC)")
    host: str = "127.0.0.1"
    port: int = Field(8080, description="0 = any free port (the bound one is printed)")
    public_url: str = Field("", description="URL people open, e.g. https://insights.example.com; "
                                            "default http://HOST:PORT")
    # -- sign-in ---------------------------------------------------------------------------------
    sign_in: Literal["link", "proxy-header"] = Field(
        "link", description="link: one-time links minted with the local JWT secret (adfatigue up); "
                            "proxy-header: an authenticating reverse proxy (oauth2-proxy) names the user")
    proxy_user_header: str = "X-Forwarded-Email"
    proxy_trusted_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"],
                                         description="peers whose identity header is believed")
    user_accounts: dict[str, list[str]] = Field(
        default_factory=dict, description='proxy-header mode: user -> ad accounts, JSON {"a@x.com": ["act_1"]}; '
                                          'key "*" applies to every signed-in user')
    operators: list[str] = Field(default_factory=list, description="proxy-header mode: users with the operator role")
    session_secret: str = Field("", description="signs session cookies; default derived from JWT_HS256_SECRET")
    session_max_age_s: int = 8 * 3600
    cookie_secure: bool | None = Field(None, description="Secure cookies; default: on unless the public URL "
                                                         "is http://localhost or 127.0.0.1")
    # -- gateway tokens (short-lived, user-scoped) -------------------------------------------------
    jwt_hs256_secret: str = Field("", validation_alias=AliasChoices("JWT_HS256_SECRET", "BFF_JWT_HS256_SECRET"))
    jwt_audience: str = Field("", validation_alias=AliasChoices("JWT_AUDIENCE", "BFF_JWT_AUDIENCE"))
    gateway_token_ttl_s: int = 300
    gateway_timeout_s: float = 30.0
    # -- live stream ----------------------------------------------------------------------------
    heartbeat_s: float = Field(15.0, description="SSE comment heartbeat interval (proxies keep the stream open)")
    retry_ms: int = Field(2000, description="SSE `retry:` sent to browsers")
    resubscribe_max_s: float = 5.0
    # -- the page ---------------------------------------------------------------------------------
    web_dist: Path = Field(REPO_WEB_DIST, description="built page (npm run build in web/)")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        local = ("http://localhost", "http://127.0.0.1", "http://[::1]")
        return not self.base_url.startswith(local)
