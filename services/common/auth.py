"""Caller authentication and per-account authorisation (DESIGN.md R9).

Callers send ``authorization: Bearer <JWT>`` in gRPC metadata. Claims:

- ``sub``: who is calling (written to the audit log);
- ``accounts``: ad account ids the caller may read (``act_123`` or ``123``),
  or ``["*"]`` for every account;
- ``roles``: e.g. ``["operator"]`` for operator-only RPCs (Scheduler.RunNow,
  forced refreshes);
- ``exp`` (required), ``iat``, ``aud`` when an audience is configured.

Keys: HS256 with a shared secret for local runs (``JWT_HS256_SECRET``);
RS256/ES256 with a public key in production (``JWT_PUBLIC_KEY``, PEM).
Tokens are verified with PyJWT; their text never appears in logs or errors.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import grpc
import jwt

from services.common.settings import AuthSettings

OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    accounts: frozenset[str]
    roles: frozenset[str]

    def may_read(self, account_id: str) -> bool:
        return "*" in self.accounts or account_id in self.accounts

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.roles


class AuthError(Exception):
    """``code`` is UNAUTHENTICATED or PERMISSION_DENIED; ``message`` says what to do."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _account(value: str) -> str:
    value = str(value)
    return value[4:] if value.startswith("act_") else value


class JwtVerifier:
    """Verifies bearer tokens; build with ``from_env()`` or explicit keys."""

    def __init__(self, key: str, algorithms: list[str], audience: str | None = None, leeway_s: float = 30,
                 cache_size: int = 4096):
        if not key:
            raise ValueError("a JWT key is required: set JWT_HS256_SECRET (local) or JWT_PUBLIC_KEY (production)")
        self.key = key
        self.algorithms = algorithms
        self.audience = audience
        self.leeway_s = leeway_s
        # token -> (principal, exp): a caller sends the same token many times; its signature is checked
        # once, its expiry on every call
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> "JwtVerifier":
        """RS256/ES256 with ``JWT_PUBLIC_KEY`` when set, else HS256 with ``JWT_HS256_SECRET``."""
        if auth.jwt_public_key:
            return cls(auth.jwt_public_key, ["RS256", "ES256"], auth.jwt_audience)
        return cls(auth.jwt_hs256_secret, ["HS256"], auth.jwt_audience)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "JwtVerifier":
        """``from_settings`` of the auth settings in ``env`` (default ``os.environ``)."""
        return cls.from_settings(AuthSettings.from_env(env))

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises AuthError(UNAUTHENTICATED) otherwise."""
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() <= hit[1] + self.leeway_s:
                return hit[0]
            del self._verified[token]
        principal, exp = self._verify_signed(token)
        if len(self._verified) >= self._cache_size:
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = (principal, exp)
        return principal

    def _verify_signed(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(token, self.key, algorithms=self.algorithms, audience=self.audience,
                                leeway=self.leeway_s, options={"require": ["exp"]})
        except jwt.ExpiredSignatureError:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "bearer token expired: obtain a new one") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            f"bearer token rejected ({type(exc).__name__}): obtain a valid token") from None
        accounts = claims.get("accounts") or []
        roles = claims.get("roles") or []
        if not isinstance(accounts, list) or not isinstance(roles, list):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "bearer token claims 'accounts' and 'roles' must be lists")
        return Principal(str(claims.get("sub", "")), frozenset(_account(a) for a in accounts),
                         frozenset(str(r) for r in roles)), float(claims["exp"])

    def authenticate(self, metadata) -> Principal:
        """The caller of a request with this gRPC invocation metadata; raises AuthError (UNAUTHENTICATED)."""
        header = next((v for k, v in (metadata or ()) if k == "authorization"), None)
        if not header:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            "missing 'authorization: Bearer <token>' metadata: this service needs a bearer JWT")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "authorization metadata must be 'Bearer <token>'")
        return self.verify(token.strip())


def require_account(principal: Principal, account_id: str) -> None:
    """Raises AuthError(PERMISSION_DENIED) unless the principal may read ``account_id`` (no prefix)."""
    if not principal.may_read(account_id):
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"caller {principal.subject or '(no sub)'} may not read act_{account_id}: "
                        "ask for a token whose 'accounts' claim includes it")


def require_operator(principal: Principal, what: str) -> None:
    if not principal.is_operator:
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"{what} is for operators: caller {principal.subject or '(no sub)'} lacks the 'operator' role")


def mint_token(secret: str, subject: str, accounts: list[str], roles: list[str] = (), ttl_s: int = 3600,
               audience: str | None = None) -> str:
    """An HS256 token (local runs and tests)."""
    now = int(time.time())
    claims = {"sub": subject, "accounts": list(accounts), "roles": list(roles), "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def dev_secret(data_dir: Path) -> str:
    """The local stack's HS256 secret, created once under ``data_dir`` (mode 0600)."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def bearer(token: str) -> tuple[tuple[str, str]]:
    """gRPC call metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)


class ServiceToken:
    """The bearer token a service (the scheduler) sends to another.

    ``ADFATIGUE_SERVICE_TOKEN_FILE`` when set: a file re-read on every call
    (production: a projected or rotated token from your identity provider);
    else ``ADFATIGUE_SERVICE_TOKEN`` (fixed); otherwise minted locally from
    ``JWT_HS256_SECRET`` with every account and the operator role, renewed
    before it expires.
    """

    def __init__(self, subject: str, env: Mapping[str, str] | None = None, ttl_s: int = 3600,
                 settings: AuthSettings | None = None):
        auth = settings if settings is not None else AuthSettings.from_env(env)
        auth.require_service_token()  # SettingsError, a ValueError
        self.token_file = auth.service_token_file
        self.fixed = auth.service_token
        self.secret = auth.jwt_hs256_secret
        self.audience = auth.jwt_audience
        self.subject = subject
        self.ttl_s = ttl_s
        self._token, self._expires = "", 0.0

    def metadata(self) -> tuple[tuple[str, str]]:
        if self.token_file:
            return bearer(Path(self.token_file).read_text().strip())
        if self.fixed:
            return bearer(self.fixed)
        if time.time() > self._expires - 300:
            self._token = mint_token(self.secret, self.subject, ["*"], [OPERATOR], self.ttl_s, self.audience)
            self._expires = time.time() + self.ttl_s
        return bearer(self._token)
