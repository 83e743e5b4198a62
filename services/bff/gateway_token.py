"""The short-lived, user-scoped bearer token the BFF sends to CacheGateway.

The browser never sees it. Claims: ``sub`` = the signed-in user, ``accounts``
= the user's accounts only, ``roles`` = the user's roles, ``act``
(RFC 8693 actor claim) = ``{"sub": "bff"}``, lifetime ``BFF_GATEWAY_TOKEN_TTL_S``
(300 s). Minted with the local HS256 secret; this one function is the swap
point for the identity service's helper in ``services/common/auth.py``.
"""

from __future__ import annotations

import time

import jwt

from services.bff.users import User

BFF_SUBJECT = "bff"


def mint_user_token(secret: str, user: User, ttl_s: int, audience: str = "") -> str:
    if not secret:
        raise RuntimeError("JWT_HS256_SECRET is not set: the BFF cannot mint gateway tokens")
    now = int(time.time())
    claims = {"sub": user.subject, "accounts": list(user.accounts), "roles": list(user.roles),
              "act": {"sub": BFF_SUBJECT}, "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


class GatewayTokens:
    """One token per user, reused until a minute before it expires."""

    def __init__(self, secret: str, ttl_s: int = 300, audience: str = ""):
        self.secret, self.ttl_s, self.audience = secret, max(ttl_s, 120), audience
        self._cache: dict[User, tuple[str, float]] = {}

    def metadata(self, user: User) -> tuple[tuple[str, str]]:
        hit = self._cache.get(user)
        if hit is None or time.time() > hit[1] - 60:
            if len(self._cache) > 10_000:
                self._cache.clear()
            hit = self._cache[user] = (mint_user_token(self.secret, user, self.ttl_s, self.audience),
                                       time.time() + self.ttl_s)
        return (("authorization", f"Bearer {hit[0]}"),)
