"""The Meta provider: the Graph API Ads Insights edge through the meta_fetcher's client (DESIGN.md R14).

Wraps ``services.meta_fetcher.account_fetch.AccountFetcher`` (so the same
tokens, vault, pacing, retries, paging and async fallback apply) in the
provider protocol of ``services.providers.base``.

- ``fetch_insights``: daily ``level=ad`` rows of the range (all fatigue
  fields), ``reach_cum`` filled when the provider was made with
  ``with_reach_cum`` (Graph ``time_ranges``, FATIGUE_SPEC.md inputs). The
  range is checked first: ``until >= since``, not older than Meta's 37
  months (META_GRAPH_API.md §4).
- Meta has no change feed: re-reading what can still change (the restatement
  window, META_GRAPH_API.md §4) is the gateway planner's decision and keeping
  only changed rows the store's (``services/providers/base.py`` says how R14's
  differential updates are realised), so this provider only reads ranges.

Errors: Graph failures become ``ProviderError`` with the fetcher's gRPC
status and message (``GraphError.grpc_status``).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Callable, Sequence

import grpc

from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.insight_row import InsightRow
from services.meta_fetcher.account_fetch import AccountFetcher
from services.meta_fetcher.credentials import Credentials
from services.meta_fetcher.graph_client import DEFAULT_FIELDS, CallCounter, GraphClient
from services.meta_fetcher.graph_errors import GraphError
from services.meta_fetcher.pacing import build_pacer
from services.common.dates import oldest_fetchable_day
from services.meta_fetcher.request_validation import RequestError
from services.meta_fetcher.settings import FetcherSettings
from services.meta_fetcher.token_vault import TokenVault
from services.providers.base import ProviderAccount, ProviderError

NAME = "meta"


class MetaProvider:
    """Meta Graph API insights as an ``InsightsProvider``; see the module docstring."""

    name = NAME

    def __init__(self, fetcher: AccountFetcher, *, with_reach_cum: bool = False, fields: Sequence[str] = DEFAULT_FIELDS,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), owns_client: bool = False) -> None:
        self.fetcher = fetcher
        self.with_reach_cum = with_reach_cum
        self.fields = tuple(fields)
        self._clock = clock
        self._owns_client = owns_client

    def serves(self, account_id: str) -> bool:
        """Every account: Meta is asked about any account (an unknown one is NOT_FOUND)."""
        return True

    @classmethod
    def from_resources(cls, resources) -> "MetaProvider":
        """On the process's shared Graph client and credentials (meta_fetcher's server)."""
        return cls(AccountFetcher(resources.client, resources.credentials))

    @classmethod
    def from_settings(cls, settings: FetcherSettings, vault: TokenVault | None = None, **kwargs) -> "MetaProvider":
        """A provider with its own Graph client and pacer (closed by ``aclose``)."""
        client = GraphClient(settings, pacer=build_pacer(settings))
        return cls(AccountFetcher(client, Credentials(settings, vault)), owns_client=True, **kwargs)

    @staticmethod
    def _account(account_id: str) -> str:
        try:
            return normalise_account_id(account_id)
        except InvalidAccountId as exc:
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None

    @staticmethod
    def _error(exc: GraphError, account: str) -> ProviderError:
        code, message = exc.grpc_status(f"act_{account}")
        return ProviderError(code, message, exc.retry_after_s)

    async def account_info(self, account_id: str, counter: CallCounter | None = None) -> ProviderAccount:
        """``GET act_{id}`` (cached by the client)."""
        account = self._account(account_id)
        counter = counter if counter is not None else CallCounter()
        try:
            info = await self.fetcher.account_info(account, counter)
        except GraphError as exc:
            raise self._error(exc, account) from None
        return ProviderAccount(account_id=account, name=info.name, currency=info.currency,
                               timezone_name=info.timezone_name)

    async def fetch_insights(self, account_id: str, since: date, until: date, *, fields: Sequence[str] = (),
                             attribution: Sequence[str] = (), with_reach_cum: bool | None = None,
                             counter: CallCounter | None = None) -> list[InsightRow]:
        """Daily ad rows of ``since..until`` from Meta (module docstring): ``fields`` (empty: the provider's),
        ``with_reach_cum`` (None: the provider's); ProviderError."""
        account = self._account(account_id)
        counter = counter if counter is not None else CallCounter()
        info = await self.account_info(account, counter)
        if until < since:
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT, f"until {until} is before since {since}")
        floor = oldest_fetchable_day(info.timezone_name, self._clock())
        if since < floor:
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT,
                                f"since {since} is older than Meta's 37-month retention; the oldest day is {floor}")
        try:
            extra = {"attribution": tuple(attribution)} if attribution else {}
            return await self.fetcher.daily_rows(account, since, until, tuple(fields) or self.fields, counter,
                                                 **extra, with_reach_cum=self.with_reach_cum if with_reach_cum is None
                                                 else with_reach_cum, timezone_name=info.timezone_name)
        except GraphError as exc:
            raise self._error(exc, account) from None
        except RequestError as exc:  # pragma: no cover - checked above
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None

    async def aclose(self) -> None:
        """Close the Graph client when this provider made it."""
        if self._owns_client:
            client = self.fetcher.client
            await client.aclose()
            if client.pacer is not None and hasattr(client.pacer, "aclose"):
                await client.pacer.aclose()
