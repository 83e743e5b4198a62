"""Refresh vault tokens before they expire (META_GRAPH_API.md §5, DESIGN.md R9).

Each pass (``run_once``) takes the valid entries whose ``refresh_due_at`` has
come (``TokenVault.due_for_refresh``) and, per entry:

- expiry unknown (stored without one): ``GET /debug_token`` learns
  ``expires_at`` (0 = never expires) and records it; ``is_valid: false`` marks
  the entry invalid;
- refresh method ``fb_exchange_token`` (long-lived user tokens, ~60 days):
  ``GET /oauth/access_token?grant_type=fb_exchange_token`` gives a new token,
  stored under the active key if the entry did not change meanwhile
  (generation check; a concurrent refresh on another replica wins);
- refresh method ``none`` (e.g. a system user token that only an admin can
  renew): logged and postponed to its expiry, after which calls fail fast
  with "expired";
- a token error (190) marks the entry invalid; any other failure leaves it
  due, so the next pass tries again.

Needs ``META_APP_ID`` and ``META_APP_SECRET`` (``enabled``). ``run_forever``
runs a pass every ``token_refresh_interval_s`` seconds. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from pymongo.errors import PyMongoError

from services.meta_fetcher.graph_client import CallCounter, GraphClient
from services.meta_fetcher.graph_errors import ErrorClass, GraphApiError, GraphError, redact
from services.meta_fetcher.settings import FetcherSettings
from services.meta_fetcher.token_vault import TokenVault, TokenVaultError

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    """Counts of one pass: tokens exchanged, expiries learnt, entries invalidated, postponed, failed."""

    exchanged: int = 0
    expiry_learnt: int = 0
    invalidated: int = 0
    postponed: int = 0
    failed: int = 0


class TokenRefresher:
    """Keeps vault tokens ahead of their expiry; see the module docstring."""

    def __init__(self, vault: TokenVault, client: GraphClient, settings: FetcherSettings | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.vault = vault
        self.client = client
        self.settings = settings or client.settings
        self._now = clock

    @property
    def enabled(self) -> bool:
        """True when the app id and secret needed by exchange and debug_token are configured."""
        return bool(self.settings.app_id and self.settings.app_secret)

    async def run_once(self) -> RefreshReport:
        """One pass over the due entries. Raises nothing for a single entry's failure (it is counted)."""
        report = RefreshReport()
        if not self.enabled:
            return report
        now = self._now()
        for account_id in await self.vault.due_for_refresh(now):
            try:
                await self._refresh(account_id, now, report)
            except (TokenVaultError, PyMongoError) as exc:
                report.failed += 1
                log.error("act_%s: token refresh failed in the vault: %s", account_id,
                          exc if isinstance(exc, TokenVaultError) else type(exc).__name__)
        if report.exchanged or report.expiry_learnt or report.invalidated or report.failed:
            log.info("token refresh: %s", report)
        return report

    async def _refresh(self, account_id: str, now: datetime, report: RefreshReport) -> None:
        stored = await self.vault.get(account_id)
        if stored is None or not stored.valid:
            return
        generation = stored.generation
        counter = CallCounter()
        try:
            if stored.expires_at is None and not stored.never_expires:
                info = await self.client.debug_token(stored.access_token, counter, account_id=account_id)
                if not info.is_valid:
                    await self.vault.mark_invalid(account_id, generation, "debug_token says is_valid=false")
                    report.invalidated += 1
                    log.warning("act_%s: Meta says the stored token is not valid; marked invalid", account_id)
                    return
                await self.vault.set_expiry(account_id, generation, expires_at=info.expires_at,
                                            never_expires=info.expires_at is None)
                report.expiry_learnt += 1
                return
            if stored.refresh_method != "fb_exchange_token":
                until = stored.expires_at or now + timedelta(days=1)
                await self.vault.postpone_refresh(account_id, generation, until)
                report.postponed += 1
                log.warning("act_%s: the stored token expires at %s and cannot be refreshed automatically "
                            "(refresh method %r): store a new one before then", account_id,
                            stored.expires_at.isoformat(timespec="seconds") if stored.expires_at else "?",
                            stored.refresh_method)
                return
            new = await self.client.exchange_token(stored.access_token, counter, account_id=account_id)
            expires_at = now + timedelta(seconds=new.expires_in_s) if new.expires_in_s else None
            if await self.vault.replace_token(account_id, generation, new.access_token, expires_at=expires_at):
                report.exchanged += 1
                log.info("act_%s: token exchanged for a long-lived one (expires %s)", account_id,
                         expires_at.isoformat(timespec="seconds") if expires_at else "unknown")
        except GraphError as exc:
            if exc.error_class is ErrorClass.TOKEN_INVALID:
                reason = redact(f"{exc.code_text}: {exc.message}" if isinstance(exc, GraphApiError) else exc.message)
                await self.vault.mark_invalid(account_id, generation, reason)
                report.invalidated += 1
                log.warning("act_%s: Meta rejected the stored token while refreshing (%s); marked invalid",
                            account_id, reason)
            else:
                report.failed += 1
                log.warning("act_%s: token refresh failed, will retry next pass: %s", account_id,
                            redact(str(exc)))

    async def run_forever(self) -> None:
        """A pass every ``token_refresh_interval_s`` seconds until cancelled."""
        if not self.enabled:
            log.info("token refresh off: META_APP_ID and META_APP_SECRET are needed to exchange tokens")
            return
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive; the next pass retries
                log.error("token refresh pass failed: %s", redact(f"{type(exc).__name__}: {exc}"))
            await asyncio.sleep(self.settings.token_refresh_interval_s)
