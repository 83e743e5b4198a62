"""Caller authentication, roles and per-account authorisation (DESIGN.md R9).

Callers send ``authorization: Bearer <JWT>`` in gRPC metadata. Claims:

- ``sub``: who is calling (written to the audit log);
- ``accounts``: the ad accounts the caller may read, each exactly ``act_<digits>``,
  or ``["*"]`` for every account; any other entry (``act_*``, ``123``, ``ACT_1``)
  makes the whole token UNAUTHENTICATED;
- ``roles``: none (a *reader* of its accounts) or any of ``reader``,
  ``operator`` (operational RPCs: GetStats, Scheduler.GetStatus/RunNow, forced
  refreshes) and the service identities ``scheduler`` (the only caller that may
  present a fencing token), ``gateway`` (the only caller of meta_fetcher and
  fatigue_engine) and ``bff``; an unknown role is refused (UNAUTHENTICATED);
- ``act``: ``{"sub": "bff"}`` (RFC 8693 actor claim) when a service acts for a
  user (``mint_user_token``);
- ``exp`` (required), ``iat``, ``aud`` when an audience is configured.

Keys: HS256 with a shared secret for local runs (``JWT_HS256_SECRET``);
RS256/ES256 with a public key (``JWT_PUBLIC_KEY``, PEM) or, so keys rotate
without restarts, from a JWKS URL (``JWT_JWKS_URL``, PyJWT's ``PyJWKClient``:
keys cached, re-fetched when a token names an unknown ``kid``). Clock leeway
``JWT_LEEWAY_SECONDS`` (default 5 s). Tokens are verified with PyJWT; their
text never appears in logs or errors.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import grpc
import jwt

from services.common.input_echo import quoted
from services.common.settings import AuthSettings

READER = "reader"
OPERATOR = "operator"
#: Service identities: a token carrying one of these roles is that service.
SCHEDULER, GATEWAY, BFF = "scheduler", "gateway", "bff"
SERVICE_IDENTITIES = frozenset({SCHEDULER, GATEWAY, BFF})
ROLES = frozenset({READER, OPERATOR}) | SERVICE_IDENTITIES
#: Default clock leeway for ``exp``/``iat``/``nbf`` (seconds): small, clocks are NTP-synced.
DEFAULT_LEEWAY_S = 5.0
#: Longest lifetime of a token minted by ``mint_user_token`` (seconds).
MAX_USER_TOKEN_TTL_S = 900

_ACCOUNT_CLAIM = re.compile(r"act_[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller. ``accounts`` holds numeric ids (no ``act_``) or ``*``; ``actor`` is the service
    acting for ``subject`` ("" when the subject calls for itself)."""

    subject: str
    accounts: frozenset[str]
    roles: frozenset[str]
    actor: str = ""

    def may_read(self, account_id: str) -> bool:
        return "*" in self.accounts or account_id in self.accounts

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.roles

    def is_service(self, identity: str) -> bool:
        """Whether this caller is the service ``identity`` (``scheduler``, ``gateway``, ``bff``)."""
        return identity in self.roles

    @property
    def caller(self) -> str:
        """For the audit: ``sub``, or ``actor>sub`` when a service acts for a user."""
        return f"{self.actor}>{self.subject}" if self.actor else self.subject


class AuthError(Exception):
    """``code`` is UNAUTHENTICATED or PERMISSION_DENIED; ``message`` says what to do."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _unauthenticated(message: str) -> AuthError:
    return AuthError(grpc.StatusCode.UNAUTHENTICATED, message)


def parse_claims(claims: dict) -> Principal:
    """The principal of verified ``claims``; raises AuthError(UNAUTHENTICATED) when they are malformed."""
    accounts = claims.get("accounts") or []
    roles = claims.get("roles") or []
    if not isinstance(accounts, list) or not isinstance(roles, list):
        raise _unauthenticated("bearer token claims 'accounts' and 'roles' must be lists")
    ids = set()
    for entry in accounts:
        if entry == "*":
            ids.add("*")
        elif isinstance(entry, str) and _ACCOUNT_CLAIM.fullmatch(entry):
            ids.add(entry[4:])
        else:
            raise _unauthenticated(f"bearer token claim 'accounts' holds {quoted(entry)}: each entry must be "
                                   "exactly act_<digits> or \"*\"; ask for a corrected token")
    for role in roles:
        if not isinstance(role, str) or role not in ROLES:
            raise _unauthenticated(f"bearer token claim 'roles' holds {quoted(role)}: known roles are "
                                   f"{', '.join(sorted(ROLES))}")
    actor = claims.get("act") or {}
    if not isinstance(actor, dict) or not isinstance(actor.get("sub", ""), str):
        raise _unauthenticated("bearer token claim 'act' must be an object with a string 'sub'")
    subject = claims.get("sub", "")
    if not isinstance(subject, str):
        raise _unauthenticated("bearer token claim 'sub' must be a string")
    return Principal(subject, frozenset(ids), frozenset(roles), actor.get("sub", ""))


def _why_rejected(exc: Exception, algorithms) -> str:
    """What is wrong with a token PyJWT refused, in words (no exception class names in messages)."""
    if isinstance(exc, jwt.InvalidSignatureError):
        return "its signature does not verify (signed with another key?)"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return f"it is signed with an algorithm this service does not accept (accepted: {', '.join(algorithms)})"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"it lacks the required claim {exc.claim!r}"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "its audience (aud) is not this service's (JWT_AUDIENCE)"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "it is not valid yet (nbf or iat in the future: check the clocks)"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "its iat claim is not a time"
    if isinstance(exc, jwt.DecodeError):
        return "it is not a well-formed JWT (header.payload.signature, base64url)"
    return "its claims are malformed"


class JwtVerifier:
    """Verifies bearer tokens; build with ``from_env()`` or explicit keys.

    ``key``: the HS256 secret or a PEM public key; or ``jwks_url`` (keys looked up by the token's ``kid``).
    ``leeway_s``: clock leeway for ``exp``/``iat``/``nbf`` (default 5 s).
    """

    def __init__(self, key: str = "", algorithms: list[str] = ("HS256",), audience: str | None = None,
                 leeway_s: float = DEFAULT_LEEWAY_S, cache_size: int = 4096, jwks_url: str = "",
                 jwks_cooldown_s: float = 30):
        if not key and not jwks_url:
            raise ValueError("a JWT key is required: set JWT_HS256_SECRET (local), JWT_PUBLIC_KEY or JWT_JWKS_URL "
                             "(production)")
        if leeway_s < 0:
            raise ValueError("JWT leeway must be >= 0 seconds")
        self.key = key
        self.algorithms = list(algorithms)
        self.audience = audience
        self.leeway_s = leeway_s
        # the key set is cached 5 min; a token naming an unknown kid re-fetches it (at most once per cooldown)
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5,
                                    cooldown_duration=jwks_cooldown_s) if jwks_url else None
        # token -> (principal, exp): a caller sends the same token many times; its signature is checked
        # once, its expiry on every call
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> "JwtVerifier":
        """``JWT_JWKS_URL`` or ``JWT_PUBLIC_KEY`` (RS256/ES256) or ``JWT_HS256_SECRET``; ``JWT_AUDIENCE``;
        ``JWT_LEEWAY_SECONDS`` (default 5); ``JWT_JWKS_COOLDOWN_SECONDS`` (30: least time between two
        re-fetches of the JWKS for an unknown kid). Settings: ``services/common/settings/parts.py``."""
        if auth.jwt_jwks_url:
            return cls("", ["RS256", "ES256"], auth.jwt_audience, auth.jwt_leeway_s, jwks_url=auth.jwt_jwks_url,
                       jwks_cooldown_s=auth.jwt_jwks_cooldown_s)
        if auth.jwt_public_key:
            return cls(auth.jwt_public_key, ["RS256", "ES256"], auth.jwt_audience, auth.jwt_leeway_s)
        return cls(auth.jwt_hs256_secret, ["HS256"], auth.jwt_audience, auth.jwt_leeway_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "JwtVerifier":
        """``from_settings`` of the auth settings in ``env`` (default ``os.environ``); a bad value raises
        SettingsError (a ValueError) naming it."""
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

    def _signing_key(self, token: str):
        if self.jwks is None:
            return self.key
        try:
            return self.jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise AuthError(grpc.StatusCode.UNAVAILABLE,
                            "the JWKS endpoint (JWT_JWKS_URL) is unreachable: retry shortly") from None
        except jwt.PyJWKClientError:
            raise _unauthenticated("bearer token's key id (kid) is not in the JWKS: obtain a valid token") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthenticated(f"bearer token rejected: {_why_rejected(exc, self.algorithms)}; obtain a valid "
                                   "token") from None

    def _verify_signed(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(token, self._signing_key(token), algorithms=self.algorithms, audience=self.audience,
                                leeway=self.leeway_s, options={"require": ["exp"]})
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("bearer token expired: obtain a new one") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthenticated(f"bearer token rejected: {_why_rejected(exc, self.algorithms)}; obtain a valid "
                                   "token") from None
        return parse_claims(claims), float(claims["exp"])

    def authenticate(self, metadata) -> Principal:
        """The caller of a request with this gRPC invocation metadata; raises AuthError (UNAUTHENTICATED)."""
        header = next((v for k, v in (metadata or ()) if k == "authorization"), None)
        if not header:
            raise _unauthenticated("missing 'authorization: Bearer <token>' metadata: this service needs a bearer JWT")
        if isinstance(header, bytes):
            header = header.decode(errors="replace")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("authorization metadata must be 'Bearer <token>'")
        return self.verify(token.strip())


def require_account(principal: Principal, account_id: str) -> None:
    """Raises AuthError(PERMISSION_DENIED) unless the principal may read ``account_id`` (no prefix)."""
    if not principal.may_read(account_id):
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"caller {quoted(principal.caller or '(no sub)')} may not read act_{account_id}: "
                        "ask for a token whose 'accounts' claim includes it")


def require_operator(principal: Principal, what: str) -> None:
    """Raises AuthError(PERMISSION_DENIED) unless the caller has the ``operator`` role."""
    if not principal.is_operator:
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"{what} is for operators: caller {quoted(principal.caller or '(no sub)')} lacks the "
                        "'operator' role")


def require_role(principal: Principal, allowed: Iterable[str], what: str) -> None:
    """Raises AuthError(PERMISSION_DENIED) unless the caller has one of the ``allowed`` roles or identities."""
    allowed = sorted(allowed)
    if not principal.roles.intersection(allowed):
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"{what} is only for {' or '.join(allowed)}: caller {quoted(principal.caller or '(no sub)')} "
                        f"has roles [{', '.join(sorted(principal.roles))}]")


def _account_claim(account: str) -> str:
    text = str(account)
    if text == "*":
        return text
    digits = text[4:] if text.startswith("act_") else text
    if not (digits.isascii() and digits.isdigit()) or not 1 <= len(digits) <= 20:
        raise ValueError(f"account {quoted(text)} is not act_<digits>, <digits> or '*'")
    return f"act_{digits}"


def mint_token(secret: str, subject: str, accounts: Iterable[str], roles: Iterable[str] = (), ttl_s: int = 3600,
               audience: str | None = None, actor: str = "", algorithm: str = "HS256", kid: str = "") -> str:
    """A signed token (local runs, tests; ``secret`` may be a PEM private key with ``algorithm`` RS256/ES256;
    ``kid``: the key id put in the header, which a verifier reading a JWKS looks the key up by).

    ``accounts``: ``act_<digits>``, ``<digits>`` (written as ``act_<digits>``) or ``*``; raises ValueError on
    anything else or an unknown role.
    """
    now = int(time.time())
    roles = list(roles)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(map(quoted, unknown))}: known are {', '.join(sorted(ROLES))}")
    claims = {"sub": subject, "accounts": [_account_claim(a) for a in accounts], "roles": roles, "iat": now,
              "exp": now + ttl_s}
    if actor:
        claims["act"] = {"sub": actor}
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid} if kid else None)


def mint_user_token(key: str, user: str, accounts: Iterable[str], ttl_s: int = 300, *, actor: str = BFF,
                    audience: str | None = None, algorithm: str = "HS256", kid: str = "") -> str:
    """A short-lived token for ``user`` limited to ``accounts``, minted by ``actor`` (the BFF) acting for them.

    Claims: ``sub`` = user, ``accounts`` = the user's ids as ``act_<digits>``, no roles (a reader),
    ``act`` = ``{"sub": actor}`` (RFC 8693), ``iat``, ``exp`` = now + ``ttl_s``. The gateway audits the call
    as ``actor>user``. ``key``: the HS256 secret (local) or a PEM private key with ``algorithm`` RS256/ES256.

    Raises ValueError: empty ``user``, no accounts, ``*`` or a malformed id among them, ``ttl_s`` outside
    1..900 seconds (MAX_USER_TOKEN_TTL_S).
    """
    accounts = [_account_claim(a) for a in accounts]
    if not user:
        raise ValueError("user is empty: name the person the token is for")
    if not accounts or "*" in accounts:
        raise ValueError("a user token names the user's accounts explicitly (no '*', not empty)")
    if not 1 <= ttl_s <= MAX_USER_TOKEN_TTL_S:
        raise ValueError(f"ttl_s {ttl_s} must be between 1 and {MAX_USER_TOKEN_TTL_S} seconds")
    return mint_token(key, user, sorted(set(accounts)), (), ttl_s, audience, actor=actor, algorithm=algorithm,
                      kid=kid)


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
    """The bearer token a service sends to another (``subject``: its identity, e.g. ``scheduler``, ``gateway``).

    ``ADFATIGUE_SERVICE_TOKEN_FILE`` when set: a file re-read on every call
    (production: a projected or rotated token from your identity provider);
    else ``ADFATIGUE_SERVICE_TOKEN`` (fixed); otherwise minted locally from
    ``JWT_HS256_SECRET`` with every account and the service's identity as its
    role, for ``audience`` (the called service's ``JWT_AUDIENCE``; default the
    caller's own ``JWT_AUDIENCE``), renewed before it expires.
    """

    def __init__(self, subject: str, env: Mapping[str, str] | None = None, ttl_s: int = 3600,
                 audience: str | None = None, settings: AuthSettings | None = None):
        auth = settings if settings is not None else AuthSettings.from_env(env)
        self.token_file = auth.service_token_file
        self.fixed = auth.service_token
        self.secret = auth.jwt_hs256_secret
        self.audience = audience or auth.jwt_audience
        self.subject = subject
        self.ttl_s = ttl_s
        self._token, self._expires = "", 0.0
        if subject not in SERVICE_IDENTITIES:
            raise ValueError(f"service identity {quoted(subject)} is not one of {', '.join(sorted(SERVICE_IDENTITIES))}")
        auth.require_service_token()  # SettingsError, a ValueError

    def metadata(self) -> tuple[tuple[str, str]]:
        if self.token_file:
            return bearer(Path(self.token_file).read_text().strip())
        if self.fixed:
            return bearer(self.fixed)
        if time.time() > self._expires - 300:
            self._token = mint_token(self.secret, self.subject, ["*"], [self.subject], self.ttl_s, self.audience)
            self._expires = time.time() + self.ttl_s
        return bearer(self._token)
