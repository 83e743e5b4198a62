"""The short-lived, user-scoped bearer token the BFF sends to CacheGateway (the browser never sees it).

A reader is limited to their own accounts: ``services.common.auth.mint_user_token``
(``sub`` = the user, ``accounts`` = theirs, no roles, ``act`` = ``{"sub": "bff"}``,
RFC 8693). A user whose sign-in grants every account (``*``, the local
``adfatigue up`` user) or the operator role gets the same claims with those
grants (``mint_token`` with actor ``bff``). Lifetime ``BFF_GATEWAY_TOKEN_TTL_S``
(300 s, at most 900).

Signed with the local HS256 secret (``JWT_HS256_SECRET``), or in production with the BFF's own
private key (``BFF_GATEWAY_SIGNING_KEY``, PEM: RSA → RS256, EC P-256 → ES256) and key id
(``BFF_GATEWAY_SIGNING_KID``, written to the token's header): the gateway verifies it with the JWKS
it reads (``JWT_JWKS_URL``), which must publish the matching public key under that ``kid``.
"""

from __future__ import annotations

import time

from services.bff.users import User
from services.common.auth import BFF, MAX_USER_TOKEN_TTL_S, mint_token, mint_user_token


def signing_algorithm(key: str) -> str:
    """``HS256`` for a shared secret; ``RS256`` / ``ES256`` for a PEM private key (ValueError: another kind)."""
    if "-----BEGIN" not in key:
        return "HS256"
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        private = load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"BFF_GATEWAY_SIGNING_KEY is not an unencrypted PEM private key: {exc}") from None
    if isinstance(private, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        return "ES256"
    raise ValueError("BFF_GATEWAY_SIGNING_KEY must be an RSA or EC P-256 private key (RS256 / ES256)")


def user_token(secret: str, user: User, ttl_s: int, audience: str = "", kid: str = "") -> str:
    """``secret``: the HS256 secret or a PEM private key (see ``signing_algorithm``)."""
    if not secret:
        raise RuntimeError("neither BFF_GATEWAY_SIGNING_KEY nor JWT_HS256_SECRET is set: the BFF cannot mint "
                           "gateway tokens")
    algorithm = signing_algorithm(secret)
    if "*" in user.accounts or user.roles:
        return mint_token(secret, user.subject, user.accounts, user.roles, ttl_s, audience or None, actor=BFF,
                          algorithm=algorithm, kid=kid)
    return mint_user_token(secret, user.subject, user.accounts, ttl_s, audience=audience or None,
                           algorithm=algorithm, kid=kid)


class GatewayTokens:
    """One token per user, reused until a minute before it expires. ``secret``: the HS256 secret or the
    BFF's PEM private key; ``kid``: its key id in the gateway's JWKS (empty: no ``kid`` header)."""

    def __init__(self, secret: str, ttl_s: int = 300, audience: str = "", kid: str = ""):
        self.secret, self.audience, self.kid = secret, audience, kid
        if secret:
            signing_algorithm(secret)  # a bad key fails at start, not on the first request
        self.ttl_s = min(max(ttl_s, 120), MAX_USER_TOKEN_TTL_S)
        self._cache: dict[User, tuple[str, float]] = {}

    def metadata(self, user: User) -> tuple[tuple[str, str]]:
        hit = self._cache.get(user)
        if hit is None or time.time() > hit[1] - 60:
            if len(self._cache) > 10_000:
                self._cache.clear()
            hit = self._cache[user] = (user_token(self.secret, user, self.ttl_s, self.audience, self.kid),
                                       time.time() + self.ttl_s)
        return (("authorization", f"Bearer {hit[0]}"),)
