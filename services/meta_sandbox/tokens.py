"""Access tokens the sandbox knows: which it accepts, when they expire, and exchanging them.

Models META_GRAPH_API.md §5:

- ``GET /{v}/oauth/access_token?grant_type=fb_exchange_token&client_id={app-id}
  &client_secret={app-secret}&fb_exchange_token={token}`` returns a new
  long-lived token ``{"access_token","token_type":"bearer","expires_in":5183944}``
  (about 60 days); an expired token cannot be exchanged (190/463).
- ``GET /{v}/debug_token?input_token={token}`` (authenticated with an app
  token ``{app-id}|{app-secret}`` or any accepted token) returns
  ``data{app_id,type,application,expires_at,data_access_expires_at,is_valid,
  issued_at,scopes,user_id}``; ``expires_at`` 0 = never expires.

A book is *closed* when the sandbox was given a token list (only those, plus
tokens it issued, are accepted) and *open* otherwise (any non-empty token is
accepted; issued tokens are still tracked so they can expire).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Mapping

#: Seconds a long-lived token lives after an exchange (Meta's documented example, §5).
LONG_LIVED_EXPIRES_IN = 5_183_944
DEFAULT_SCOPES = ("ads_read",)
_ALPHABET = string.ascii_letters + string.digits


@dataclass
class SandboxToken:
    """One token the sandbox tracks (the value itself is hidden from ``repr``)."""

    value: str = field(repr=False)
    expires_at: datetime | None = None   # None = never expires
    issued_at: datetime | None = None
    user_id: str = "10000000000000001"
    type: str = "USER"
    scopes: tuple[str, ...] = DEFAULT_SCOPES


class TokenBook:
    """Accepted tokens and their expiry; see the module docstring."""

    def __init__(self, tokens: Iterable[str] | Mapping[str, datetime | None] | None, *,
                 app_id: str | None = None, app_secret: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.closed = tokens is not None
        self.app_id = app_id
        self.app_secret = app_secret
        self._now = clock
        self._tokens: dict[str, SandboxToken] = {}
        if tokens is not None:
            items = tokens.items() if isinstance(tokens, Mapping) else ((t, None) for t in tokens)
            for value, expires in items:
                self._tokens[value] = SandboxToken(value=value, expires_at=expires, issued_at=self._now())

    @property
    def app_token(self) -> str | None:
        """``{app-id}|{app-secret}`` when both are configured."""
        return f"{self.app_id}|{self.app_secret}" if self.app_id and self.app_secret else None

    def check(self, token: str) -> str:
        """``"ok"``, ``"missing"``, ``"unknown"`` (closed book, never issued) or ``"expired"``."""
        if not token:
            return "missing"
        if token == self.app_token:
            return "ok"
        known = self._tokens.get(token)
        if known is None:
            return "unknown" if self.closed else "ok"
        if known.expires_at is not None and known.expires_at <= self._now():
            return "expired"
        return "ok"

    def info(self, token: str) -> SandboxToken | None:
        """The tracked token, or a never-expiring stand-in for any token of an open book, or None."""
        known = self._tokens.get(token)
        if known is None and not self.closed and token:
            return SandboxToken(value=token)
        return known

    def issue(self, expires_in_s: int = LONG_LIVED_EXPIRES_IN, like: SandboxToken | None = None) -> SandboxToken:
        """A new long-lived token (accepted from now on), with the user and scopes of ``like``."""
        value = "EAAS" + "".join(secrets.choice(_ALPHABET) for _ in range(60))
        now = self._now()
        token = SandboxToken(value=value, expires_at=now + timedelta(seconds=expires_in_s), issued_at=now,
                             user_id=like.user_id if like else SandboxToken.user_id,
                             scopes=like.scopes if like else DEFAULT_SCOPES)
        self._tokens[value] = token
        return token

    def set(self, value: str, expires_at: datetime | None) -> None:
        """Accept ``value`` (until ``expires_at``; None = never)."""
        self._tokens[value] = SandboxToken(value=value, expires_at=expires_at, issued_at=self._now())

    def revoke(self, value: str) -> None:
        """Stop accepting ``value`` (as when the user changes their password, 190/460); closes the book for it."""
        self._tokens[value] = SandboxToken(value=value, expires_at=datetime.fromtimestamp(0, timezone.utc))
