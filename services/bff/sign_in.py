"""Sign-in. Two standards, one per deployment (``BFF_SIGN_IN``):

- ``link`` (local runs): ``adfatigue up`` prints a one-time link
  ``/ad-fatigue/sign-in?token=<JWT>``. The token is HS256-signed with a key derived from the local
  secret, lives 15 minutes, has ``purpose`` = ``adfatigue-bff-sign-in`` and a
  ``jti``; the BFF accepts each ``jti`` once.
- ``proxy-header`` (production): an authenticating reverse proxy in front of
  the BFF (e.g. oauth2-proxy with OIDC, ``--set-xauthrequest``/``--pass-user-headers``)
  names the user in ``X-Forwarded-Email``; the header is believed only from
  ``BFF_PROXY_TRUSTED_IPS``. Accounts come from ``BFF_USER_ACCOUNTS``.

Either way the BFF then keeps the user in its own session cookie.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from urllib.parse import urlencode

import jwt

from services.bff.users import User, account_list
from services.common.auth import OPERATOR, READER

PURPOSE = "adfatigue-bff-sign-in"


#: Roles a person signed in to the page may hold (services/common/auth.py names them).
USER_ROLES = frozenset({READER, OPERATOR})


class SignInError(Exception):
    pass


def link_key(secret: str) -> str:
    """The key of sign-in tokens: derived from the local secret, so a link is never a gateway bearer token."""
    return hashlib.sha256(f"{PURPOSE}:{secret}".encode()).hexdigest()


def mint_sign_in_link(base_url: str, secret: str, subject: str, accounts, roles=(), ttl_s: int = 900,
                      next_path: str = "/ad-fatigue") -> str:
    """A one-time sign-in URL for ``subject`` (local runs and tests)."""
    now = int(time.time())
    token = jwt.encode({"purpose": PURPOSE, "sub": subject, "accounts": list(accounts), "roles": list(roles),
                        "jti": uuid.uuid4().hex, "iat": now, "exp": now + ttl_s}, link_key(secret),
                       algorithm="HS256")
    query = {"token": token}
    if next_path != "/ad-fatigue":
        query["next"] = next_path
    return f"{base_url.rstrip('/')}/ad-fatigue/sign-in?{urlencode(query)}"


class SignInLinks:
    """Verifies one-time sign-in tokens; each is accepted once (per BFF process)."""

    def __init__(self, secret: str):
        self.secret = secret
        self._used: dict[str, float] = {}  # jti -> exp

    def redeem(self, token: str) -> User:
        if not self.secret:
            raise SignInError("sign-in links are off: this BFF has no JWT_HS256_SECRET")
        try:
            claims = jwt.decode(token, link_key(self.secret), algorithms=["HS256"], options={"require": ["exp", "jti", "sub"]})
        except jwt.ExpiredSignatureError:
            raise SignInError("this sign-in link has expired: ask for a new one (restart adfatigue up or "
                              "run it again)") from None
        except jwt.InvalidTokenError:
            raise SignInError("this sign-in link is not valid: copy the whole link that adfatigue up printed") from None
        if claims.get("purpose") != PURPOSE:
            raise SignInError("this token is not a sign-in link")
        now = time.time()
        self._used = {j: e for j, e in self._used.items() if e > now}
        if claims["jti"] in self._used:
            raise SignInError("this sign-in link was used already: each link signs in once; ask for a new one "
                              "(a local run: `adfatigue sign-in` prints one)")
        self._used[claims["jti"]] = float(claims["exp"])
        roles, subject = claims.get("roles") or [], claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise SignInError("this sign-in link names no user ('sub' must be a non-empty string): make a new one")
        if not isinstance(roles, list) or not all(isinstance(r, str) and r in USER_ROLES for r in roles):
            raise SignInError(f"this sign-in link's roles must be a list of {' or '.join(sorted(USER_ROLES))}: "
                              "make a new one")
        try:
            return User(subject, account_list(claims.get("accounts") or []), tuple(roles))
        except (ValueError, TypeError) as exc:
            raise SignInError(f"this sign-in link names a bad account: {exc}") from None


def proxy_user(subject: str, user_accounts: dict[str, list[str]], operators: list[str]) -> User:
    """The user a trusted proxy named, with the accounts configured for them."""
    accounts = list(user_accounts.get(subject, [])) + list(user_accounts.get("*", []))
    return User(subject, account_list(dict.fromkeys(accounts)), ("operator",) if subject in operators else ())


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
