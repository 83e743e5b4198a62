"""The BFF application: routers, middlewares, error handlers, shared clients (built in ``create_app``)."""

from __future__ import annotations

import hashlib
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware

from services.bff import http_telemetry, problems
from services.bff.api_routes import router as api_router
from services.bff.gateway_client import GatewayClient
from services.bff.gateway_token import GatewayTokens
from services.bff.health_routes import router as health_router
from services.bff.live_events import Feeds
from services.bff.page_models import PageModels
from services.bff.page_routes import router as page_router
from services.bff.security_headers import SecurityHeaders
from services.bff.settings import BffSettings
from services.bff.sign_in import SignInLinks
from services.common.tls import TlsConfig

SESSION_COOKIE = "adfatigue_session"
API_DESCRIPTION = """\
Backend-for-frontend of the `/ad-fatigue` page. A client of CacheGateway over gRPC only.

Sign in first (a one-time link from `adfatigue up`, or an authenticating proxy in production):
the session is an HttpOnly, SameSite=Strict cookie. State-changing requests need the
`X-CSRF-Token` header from `GET /api/v1/session`. Errors are problem details (RFC 9457).
"""


def session_secret(settings: BffSettings) -> str:
    if settings.session_secret:
        return settings.session_secret
    if not settings.jwt_hs256_secret:
        raise RuntimeError("set BFF_SESSION_SECRET (or JWT_HS256_SECRET) to sign session cookies")
    return hashlib.sha256(b"adfatigue-bff-session:" + settings.jwt_hs256_secret.encode()).hexdigest()


def create_app(settings: BffSettings | None = None) -> FastAPI:
    settings = settings or BffSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        tokens = GatewayTokens(settings.gateway_signing_key or settings.jwt_hs256_secret, settings.gateway_token_ttl_s,
                               settings.jwt_audience or "", settings.gateway_signing_kid)
        app.state.gateway = GatewayClient(settings.gateway_addr, tokens, settings.gateway_timeout_s,
                                          TlsConfig.from_settings(settings))
        app.state.models = PageModels(app.state.gateway)
        app.state.feeds = Feeds(app.state.models, app.state.gateway, settings.resubscribe_max_s)
        try:
            yield
        finally:
            await app.state.feeds.close()
            await app.state.gateway.close()

    app = FastAPI(title="adfatigue BFF", version="1.0.0", description=API_DESCRIPTION, lifespan=lifespan,
                  openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sign_in_links = SignInLinks(settings.jwt_hs256_secret, settings.sign_in_used_links)
    problems.install(app)
    app.include_router(api_router, prefix="/api/v1")
    app.include_router(page_router)
    app.include_router(health_router)
    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie=SESSION_COOKIE,
                       max_age=settings.session_max_age_s, same_site="strict", https_only=settings.secure_cookies)
    app.add_middleware(GZipMiddleware, minimum_size=500, compresslevel=6)
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookies)
    # outermost: request durations and server spans (once setup_telemetry ran; see http_telemetry)
    http_telemetry.instrument(app, settings.telemetry_enabled)
    return app
