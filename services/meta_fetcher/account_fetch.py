"""One account's insights from Meta: the right token, the Graph calls, cumulative reach.

``AccountFetcher`` is what the gRPC servicer and the Meta provider
(``services.meta_fetcher.meta_provider``) share:

- picks the account's credential (``credentials``: vault token, else
  ``META_ACCESS_TOKEN``; a token marked invalid fails fast, no call);
- calls ``GraphClient`` with it; a token error (190) marks the vault entry
  invalid (``Credentials.rejected``) before the error is raised;
- optionally fills ``InsightRow.reach_cum`` (FATIGUE_SPEC.md inputs):
  deduplicated reach over [first delivery day .. t] for every day t that has
  a row, fetched as Graph ``time_ranges`` (META_GRAPH_API.md §1) starting at
  the account's retention floor (37 months back, one day of margin, §4).
  Reach before an ad's first delivery is zero, so that single start serves
  every ad; an ad delivering for longer than Meta keeps data gets the reach
  of the retained part. Only the t's of the rows asked for are fetched, so a
  caller that asks for new days only (differential) pays only for new t's.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Awaitable, Callable, Sequence, TypeVar

from services.common.attribution import DEFAULT_ATTRIBUTION
from services.common.insight_row import InsightRow
from services.meta_fetcher.credentials import Credential, Credentials
from services.meta_fetcher.graph_client import AccountInfo, CallCounter, GraphClient
from services.meta_fetcher.graph_errors import ErrorClass, GraphError
from services.common.dates import account_today, retention_floor

T = TypeVar("T")


class AccountFetcher:
    """Token-aware access to one Graph client; see the module docstring."""

    def __init__(self, client: GraphClient, credentials: Credentials | None = None) -> None:
        self.client = client
        self.credentials = credentials or Credentials(client.settings)

    async def _with_token(self, account_id: str, call: Callable[[Credential], Awaitable[T]]) -> T:
        credential = await self.credentials.for_account(account_id)
        try:
            return await call(credential)
        except GraphError as exc:
            if exc.error_class is ErrorClass.TOKEN_INVALID:
                await self.credentials.rejected(credential, exc)
            raise

    async def account_info(self, account_id: str, counter: CallCounter) -> AccountInfo:
        """Time zone and currency of ``act_{account_id}`` (cached by the client). Raises GraphError subclasses."""
        cached = self.client.cached_account(account_id)
        if cached is not None:
            return cached
        return await self._with_token(account_id, lambda c: self.client.account_info(account_id, counter,
                                                                                     token=c.token))

    async def daily_rows(self, account_id: str, since: date, until: date, fields: Sequence[str],
                         counter: CallCounter, *, with_reach_cum: bool = False,
                         timezone_name: str | None = None,
                         attribution: Sequence[str] = DEFAULT_ATTRIBUTION) -> list[InsightRow]:
        """Daily ad rows of ``since..until`` (``GraphClient.fetch_insights``), with ``reach_cum`` when asked.

        ``timezone_name``: the account's zone (for the reach origin); looked up when None.
        ``attribution``: the account's ``action_attribution_windows`` (canonical; rows are tagged with it).
        Raises GraphError subclasses (``TokenUnusable`` before any call).
        """
        async def run(credential: Credential) -> list[InsightRow]:
            rows = await self.client.fetch_insights(account_id, since, until, fields, counter,
                                                    token=credential.token, attribution=attribution)
            if not with_reach_cum or not rows:
                return rows
            zone = timezone_name or (await self.client.account_info(account_id, counter,
                                                                    token=credential.token)).timezone_name
            origin = min(retention_floor(account_today(zone)), since)
            reach = await self.client.fetch_reach_cum(account_id, origin, sorted({r.date_start for r in rows}),
                                                      counter, token=credential.token)
            return [dataclasses.replace(r, reach_cum=reach.get((r.ad_id, r.date_start))) for r in rows]

        return await self._with_token(account_id, run)
