"""Sign-in. Two standards, one per deployment (``BFF_SIGN_IN``):

- ``link`` (local runs): ``adfatigue up`` prints a one-time link
  ``/ad-fatigue/sign-in?token=<JWT>``. The token is HS256-signed with a key derived from the local
  secret, lives as long as it was minted for (``adfatigue sign-in --ttl``, default
  24 hours; tests mint 15-minute ones), has ``purpose`` = ``adfatigue-bff-sign-in`` and a
  ``jti``; the BFF accepts each ``jti`` once. Used ``jti``s are kept until their link expires, in
  ``BFF_SIGN_IN_USED_LINKS`` (a JSON file; ``adfatigue up`` puts it beside the local secret, so a
  used link stays used when the BFF restarts) or, unset, in the process's memory.
- ``proxy-header`` (production): an authenticating reverse proxy in front of
  the BFF (e.g. oauth2-proxy with OIDC, ``--set-xauthrequest``/``--pass-user-headers``)
  names the user in ``X-Forwarded-Email``; the header is believed only from
  ``BFF_PROXY_TRUSTED_IPS``. Accounts come from ``BFF_USER_ACCOUNTS``.

Either way the BFF then keeps the user in its own session cookie.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import jwt

from services.bff.users import User, account_list
from services.common.auth import OPERATOR, READER

PURPOSE = "adfatigue-bff-sign-in"
log = logging.getLogger(__name__)


#: Roles a person signed in to the page may hold (services/common/auth.py names them).
USER_ROLES = frozenset({READER, OPERATOR})


class SignInError(Exception):
    """The link is not accepted (HTTP 401)."""


class SignInUnavailable(SignInError):
    """No link can be checked now: the used-links file is unreadable or unwritable (HTTP 503)."""


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


#: What a person is told when the used-links file cannot be used (its path and the OS error go to the log only).
UNAVAILABLE = ("sign-in is unavailable: the server cannot read or write its sign-in records; try again in a "
               "minute, or tell the operator (the BFF's log says what is wrong)")


class UsedLinks:
    """Keys -> expiry (Unix seconds) of what must not work again until then: redeemed sign-in links
    (``link:<jti>``, until the link's ``exp``) and signed-out sessions (``session:<sid>``, until the
    session could have expired).

    With ``path`` the set lives in that JSON file, rewritten whole and atomically (temporary file, then
    ``os.replace``) before a link is accepted, so a restart forgets no used link; a missing file is an empty
    set; an unreadable or unwritable one raises ``SignInUnavailable`` (no link is accepted then rather than an old
    one twice; the reason is logged, not shown).
    """

    def __init__(self, path: Path | None = None):
        self.path = path
        self._memory: dict[str, float] = {}
        self._seen: tuple[float, dict[str, float]] | None = None  # (file mtime, its content) for ``contains``

    def _load(self, now: float) -> dict[str, float]:
        if self.path is None:
            used = self._memory
        else:
            try:
                used = json.loads(self.path.read_text())
                if not isinstance(used, dict):
                    raise ValueError("not a JSON object")
                used = {str(j): float(e) for j, e in used.items()}
            except FileNotFoundError:
                used = {}
            except (OSError, ValueError, TypeError, RecursionError) as exc:  # RecursionError: nesting too deep
                log.error("the used-links file %s cannot be read (%s): no sign-in link is accepted until it is "
                          "mended or deleted (deleting makes links issued before usable once more until they expire)",
                          self.path, str(exc)[:200])
                raise SignInUnavailable(UNAVAILABLE) from None
        return {j: e for j, e in used.items() if e > now}

    def _save(self, used: dict[str, float]) -> None:
        if self.path is None:
            self._memory = used
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(used))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("the used-links file %s cannot be written (%s)", self.path, exc)
            raise SignInUnavailable(UNAVAILABLE) from None

    def use(self, key: str, exp: float) -> bool:
        """Marks ``key`` used until ``exp``; False when it was used already."""
        now = time.time()
        used = self._load(now)
        if key in used:
            return False
        used[key] = exp
        self._save(used)
        return True

    def contains(self, key: str) -> bool:
        """Whether ``key`` is used and not expired (the file is re-read only when it changed: this runs on
        every signed-in request)."""
        if self.path is not None:
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                return False
            except OSError:
                mtime = -1
            if self._seen is None or self._seen[0] != mtime or mtime == -1:
                self._seen = (mtime, self._load(time.time()))
            used = self._seen[1]
        else:
            used = self._memory
        exp = used.get(key)
        return exp is not None and exp > time.time()


class SignInLinks:
    """Verifies one-time sign-in tokens; each is accepted once (see ``UsedLinks``)."""

    def __init__(self, secret: str, used_links_path: Path | None = None):
        self.secret = secret
        self._used = UsedLinks(used_links_path)

    def redeem(self, token: str) -> User:
        if not self.secret:
            raise SignInError("sign-in links are off: this BFF has no JWT_HS256_SECRET")
        try:
            claims = jwt.decode(token, link_key(self.secret), algorithms=["HS256"], options={"require": ["exp", "jti", "sub"]})
        except jwt.ExpiredSignatureError:
            raise SignInError("this sign-in link has expired: ask for a new one (a local run: `adfatigue sign-in` "
                              "prints one)") from None
        except jwt.InvalidTokenError:
            raise SignInError("this sign-in link is not valid: copy the whole link that `adfatigue up` "
                              "or `adfatigue sign-in` printed") from None
        if claims.get("purpose") != PURPOSE:
            raise SignInError("this token is not a sign-in link")
        roles, subject = claims.get("roles") or [], claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise SignInError("this sign-in link names no user ('sub' must be a non-empty string): make a new one")
        if not isinstance(roles, list) or not all(isinstance(r, str) and r in USER_ROLES for r in roles):
            raise SignInError(f"this sign-in link's roles must be a list of {' or '.join(sorted(USER_ROLES))}: "
                              "make a new one")
        if not isinstance(claims["jti"], str) or not isinstance(claims["exp"], (int, float)):
            raise SignInError("this sign-in link's 'jti' must be a string and 'exp' a number: make a new one")
        if not self._used.use("link:" + claims["jti"], float(claims["exp"])):
            raise SignInError("this sign-in link was used already: each link signs in once; ask for a new one "
                              "(a local run: `adfatigue sign-in` prints one)")
        try:
            return User(subject, account_list(claims.get("accounts") or []), tuple(roles))
        except (ValueError, TypeError) as exc:
            raise SignInError(f"this sign-in link names a bad account: {exc}") from None

    def end_session(self, sid: str, until: float) -> None:
        """Sign-out: the session ``sid`` is refused from now until ``until`` (Unix seconds; its cookie could
        be replayed until it expires)."""
        self._used.use("session:" + sid, until)

    def session_ended(self, sid: str) -> bool:
        return self._used.contains("session:" + sid)


def proxy_user(subject: str, user_accounts: dict[str, list[str]], operators: list[str]) -> User:
    """The user a trusted proxy named, with the accounts configured for them."""
    accounts = list(user_accounts.get(subject, [])) + list(user_accounts.get("*", []))
    return User(subject, account_list(dict.fromkeys(accounts)), ("operator",) if subject in operators else ())


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
