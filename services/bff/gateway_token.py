"""The short-lived, user-scoped bearer token the BFF sends to CacheGateway (the browser never sees it).

A reader is limited to their own accounts: ``services.common.auth.mint_user_token``
(``sub`` = the user, ``accounts`` = theirs, no roles, ``act`` = ``{"sub": "bff"}``,
RFC 8693). A user whose sign-in grants every account (``*``, the local
``adfatigue up`` user) or the operator role gets the same claims with those
grants (``mint_token`` with actor ``bff``). Lifetime ``BFF_GATEWAY_TOKEN_TTL_S``
(300 s, at most 900); signed with the local HS256 secret (``JWT_HS256_SECRET``).
"""

from __future__ import annotations

import time

from services.bff.users import User
from services.common.auth import BFF, MAX_USER_TOKEN_TTL_S, mint_token, mint_user_token


def user_token(secret: str, user: User, ttl_s: int, audience: str = "") -> str:
    if not secret:
        raise RuntimeError("JWT_HS256_SECRET is not set: the BFF cannot mint gateway tokens")
    if "*" in user.accounts or user.roles:
        return mint_token(secret, user.subject, user.accounts, user.roles, ttl_s, audience or None, actor=BFF)
    return mint_user_token(secret, user.subject, user.accounts, ttl_s, audience=audience or None)


class GatewayTokens:
    """One token per user, reused until a minute before it expires."""

    def __init__(self, secret: str, ttl_s: int = 300, audience: str = ""):
        self.secret, self.audience = secret, audience
        self.ttl_s = min(max(ttl_s, 120), MAX_USER_TOKEN_TTL_S)
        self._cache: dict[User, tuple[str, float]] = {}

    def metadata(self, user: User) -> tuple[tuple[str, str]]:
        hit = self._cache.get(user)
        if hit is None or time.time() > hit[1] - 60:
            if len(self._cache) > 10_000:
                self._cache.clear()
            hit = self._cache[user] = (user_token(self.secret, user, self.ttl_s, self.audience),
                                       time.time() + self.ttl_s)
        return (("authorization", f"Bearer {hit[0]}"),)
