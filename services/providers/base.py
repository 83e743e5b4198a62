"""The provider protocol (DESIGN.md R14) and what every provider shares.

A provider answers, for one ad account:

- ``serves(account_id) -> bool``: whether this provider holds the account
  (meta_fetcher hands each account to the first provider of its ``PROVIDERS``
  setting that serves it: ``services/meta_fetcher/provider_registry.py``);
- ``account_info(account_id, counter=None) -> ProviderAccount``: name, ISO 4217 currency,
  IANA time zone (row dates are calendar dates of that zone, META_GRAPH_API.md §4);
- ``fetch_insights(account_id, since, until, *, fields=(), attribution=(),
  with_reach_cum=False, counter=None) -> list[InsightRow]``: daily ad-level rows of the inclusive
  range with at least ``fields`` filled (empty: every field), under the
  attribution setting ``attribution`` (empty: the source's own; rows carry it in
  ``action_attribution_windows``), sorted by
  (date_start, ad_id), typed
  (``services.common.insight_row``: counts ``int``, spend ``Decimal``,
  unknown ``None``); ``reach_cum`` filled when asked and the source has it.
  ``counter``: an object whose ``calls`` (int) is raised by every upstream
  call made (HTTP requests to Meta; 0 for a file);
- ``aclose()``: release connections and files.

Differential updates (R14 "differential updates since a sync point") are not a
provider method. No source here has a change feed (Meta has none and restates
up to 28 days back, META_GRAPH_API.md §4), so the sync point is what L2 already
keeps: each day's ``fetched_at`` and each row's content hash. The gateway's
planner (``services/cache_gateway/planner.py``) asks a provider only for the
days that are missing or due under the freshness policy (today on its interval,
the restatement window on its interval, a day that became final once), and the
store's row diff (``InsightsStore.apply_fetch``) makes a new version of only the
rows that changed; subscribers get exactly those (the change feed,
``replay_since``). The scheduler refreshes due days through the same path. A
provider is therefore only asked for plain ranges.

A source with a native change feed (a cursor or ``updated_since`` query) would
add one optional method, e.g. ``changed_days(account_id, cursor) -> (days,
next_cursor)``, with the cursor stored per account in L2 next to the version;
the planner would mark those days due at once and could stop re-reading
restatement-window days on a timer. Nothing calls such a method today, so the
protocol does not have one.

Errors: ``ProviderError`` with a gRPC status code name and a message a person
can act on (``NOT_FOUND`` unknown account, ``INVALID_ARGUMENT`` bad range,
``FAILED_PRECONDITION`` token/config, ``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``,
``DATA_LOSS`` unreadable data).

Each registered provider class also has ``from_resources(resources)``
(``services/meta_fetcher/provider_registry.py``), how meta_fetcher builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, Sequence, runtime_checkable

import grpc

from services.common.insight_row import InsightRow


class ProviderError(Exception):
    """A provider could not answer. ``code``: the gRPC status to answer with; ``retry_after_s`` when known."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


@dataclass(frozen=True)
class ProviderAccount:
    """An ad account as a provider knows it. ``account_id`` is numeric (no ``act_``)."""

    account_id: str
    name: str
    currency: str
    timezone_name: str


@runtime_checkable
class InsightsProvider(Protocol):
    """What every insights source implements (module docstring)."""

    name: str

    def serves(self, account_id: str) -> bool:
        """Whether this provider holds ``account_id`` (``act_`` or numeric)."""
        ...

    async def account_info(self, account_id: str, counter=None) -> ProviderAccount:
        """Name, currency and time zone of the account; ProviderError."""
        ...

    async def fetch_insights(self, account_id: str, since: date, until: date, *, fields: Sequence[str] = (),
                             attribution: Sequence[str] = (), with_reach_cum: bool = False,
                             counter=None) -> list[InsightRow]:
        """Daily ad rows of ``since..until`` (inclusive), sorted by (date_start, ad_id); ProviderError."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
