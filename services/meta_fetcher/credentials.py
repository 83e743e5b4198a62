"""Which access token a Graph call uses, and what a rejected token does (DESIGN.md R9, META_GRAPH_API.md §5).

- With a vault (``TOKEN_KEYS`` + ``MONGODB_URI``): the vault's token of the
  account when one is stored, else ``META_ACCESS_TOKEN``.
- A stored token marked invalid (Meta answered 190 for it) or past its
  recorded expiry fails at once with ``TokenUnusable`` (gRPC
  FAILED_PRECONDITION) and no call to Meta, until a new token is stored
  (``python -m services.meta_fetcher.token_admin put``).
- ``rejected`` marks the vault entry invalid after a 190 (only the generation
  that was used, so a token stored meanwhile is not touched).
- A record that does not decrypt (tampered, unknown key) is ``TokenUnusable``
  too: nothing is decrypted and the env token is *not* used instead.
- The vault unreachable -> ``VaultUnavailable`` (UNAVAILABLE, retry later).

Every decrypted token is registered for redaction (``graph_errors.register_secret``);
tokens never appear in a message of this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import grpc
from pymongo.errors import PyMongoError

from services.meta_fetcher.graph_errors import ErrorClass, GraphApiError, GraphError, redact, register_secret
from services.meta_fetcher.settings import FetcherSettings
from services.meta_fetcher.token_vault import TokenVault, TokenVaultError

log = logging.getLogger(__name__)

ENV, VAULT = "env", "vault"


def put_hint(account: str) -> str:
    """How to store a new token for ``account`` (``act_...``)."""
    return f"store a new one: python -m services.meta_fetcher.token_admin put --account {account} --token-file FILE"


@dataclass(frozen=True)
class Credential:
    """The token for one account's calls. ``token`` is hidden from ``repr``.

    ``source``: ``"vault"`` or ``"env"``; ``generation``: the vault entry's
    generation (None for the env token).
    """

    account_id: str
    token: str = field(repr=False)
    source: str = ENV
    generation: int | None = None


class TokenUnusable(GraphError):
    """The account's stored token cannot be used (invalid, expired, undecryptable); no call was made."""

    error_class = ErrorClass.TOKEN_INVALID

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        return grpc.StatusCode.FAILED_PRECONDITION, self.message


class VaultUnavailable(GraphError):
    """The token vault (MongoDB) did not answer; no call was made."""

    error_class = ErrorClass.RETRY

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        return grpc.StatusCode.UNAVAILABLE, f"token vault unreachable for {account}; retry later ({self.message})"


class Credentials:
    """Hands out the token for an account and records Meta's rejections in the vault."""

    def __init__(self, settings: FetcherSettings, vault: TokenVault | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.settings = settings
        self.vault = vault
        self._now = clock

    def env(self, account_id: str) -> Credential:
        """The ``META_ACCESS_TOKEN`` credential."""
        return Credential(account_id=account_id, token=self.settings.access_token, source=ENV)

    async def for_account(self, account_id: str) -> Credential:
        """The credential for numeric ``account_id``; raises TokenUnusable or VaultUnavailable (no call made)."""
        if self.vault is None:
            return self.env(account_id)
        account = f"act_{account_id}"
        try:
            stored = await self.vault.get(account_id)
        except TokenVaultError as exc:
            log.error("%s: stored token unusable: %s", account, exc)
            raise TokenUnusable(str(exc)) from None
        except PyMongoError as exc:
            raise VaultUnavailable(type(exc).__name__) from None
        if stored is None:
            return self.env(account_id)
        register_secret(stored.access_token)
        register_secret(stored.refresh_token)
        if not stored.valid:
            since = stored.invalid_since.isoformat(timespec="seconds") if stored.invalid_since else "earlier"
            raise TokenUnusable(
                f"the stored token for {account} was rejected by Meta ({since}: {stored.invalid_reason or 'invalid'})"
                f"; no call was made; re-authorise and {put_hint(account)}")
        if stored.expired(self._now()):
            raise TokenUnusable(
                f"the stored token for {account} expired at {stored.expires_at.isoformat(timespec='seconds')} "
                f"and an expired token cannot be exchanged (META_GRAPH_API.md §5); no call was made; "
                f"re-authorise and {put_hint(account)}")
        return Credential(account_id=account_id, token=stored.access_token, source=VAULT,
                          generation=stored.generation)

    async def rejected(self, credential: Credential, error: GraphError) -> None:
        """Meta answered a token error (190, 102, 2500) for ``credential``: mark a vault token invalid."""
        if error.error_class is not ErrorClass.TOKEN_INVALID or isinstance(error, TokenUnusable):
            return
        account = f"act_{credential.account_id}"
        if credential.source != VAULT or self.vault is None or credential.generation is None:
            log.warning("%s: Meta rejected META_ACCESS_TOKEN (%s)", account,
                        error.code_text if isinstance(error, GraphApiError) else "token error")
            return
        reason = redact(f"{error.code_text}: {error.message}" if isinstance(error, GraphApiError) else error.message)
        try:
            changed = await self.vault.mark_invalid(credential.account_id, credential.generation, reason)
        except PyMongoError as exc:
            log.error("%s: could not mark the rejected token invalid in the vault (%s)", account,
                      type(exc).__name__)
            return
        if changed:
            log.warning("%s: Meta rejected the stored token (generation %d, %s); marked invalid, calls fail fast "
                        "until a new token is stored", account, credential.generation, reason)
