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
- ``changes_since(account_id, sync_point) -> (rows, new_sync_point)``:
  differential updates. ``sync_point`` None means "first sync". The rows are
  those of every day that is new or whose rows changed since the sync point
  (a changed day comes back whole, so the caller can upsert by key
  ``(account_id, ad_id, date_start)``; DATA_PITFALLS.md 4-5). Store the
  returned ``SyncPoint`` (``encode()``: a JSON string) and pass it back next time.

Change detection is by day digests (``diff_by_day``): the sync point keeps a
SHA-256 digest of each day that can still change, so an unchanged day is not
returned again even when the provider had to re-read it (Meta restates up to
28 days back, §4). A day whose rows all disappeared is not reported (there
is no row to carry it); no provider here deletes days.

Errors: ``ProviderError`` with a gRPC status code name and a message a person
can act on (``NOT_FOUND`` unknown account, ``INVALID_ARGUMENT`` bad range or
sync point, ``FAILED_PRECONDITION`` token/config, ``RESOURCE_EXHAUSTED``,
``UNAVAILABLE``, ``DATA_LOSS`` unreadable data).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Mapping, Protocol, Sequence, runtime_checkable

import grpc

from services.common.insight_row import InsightRow
from services.common.row_proto import row_to_proto

SYNC_POINT_VERSION = 1


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


@dataclass(frozen=True)
class SyncPoint:
    """Where a differential sync stopped.

    ``through``: the last day covered (inclusive, account time zone);
    ``day_digests``: ISO date -> digest of that day's rows, for the days that
    may still change; ``source``: a provider's own marker (e.g. the CSV file's
    digest). Opaque to callers: persist ``encode()`` and pass ``decode(text)`` back.
    """

    provider: str
    account_id: str
    through: date
    day_digests: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def encode(self) -> str:
        """Compact, stable JSON."""
        return json.dumps({"v": SYNC_POINT_VERSION, "provider": self.provider, "account_id": self.account_id,
                           "through": self.through.isoformat(), "days": dict(sorted(self.day_digests.items())),
                           "source": self.source}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> "SyncPoint":
        """Parse ``encode()`` output; ProviderError INVALID_ARGUMENT when it is not one."""
        try:
            raw = json.loads(text)
            if raw.get("v") != SYNC_POINT_VERSION:
                raise ValueError("version")
            days = raw.get("days") or {}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in days.items()):
                raise ValueError("days")
            return cls(provider=str(raw["provider"]), account_id=str(raw["account_id"]),
                       through=date.fromisoformat(raw["through"]), day_digests=days, source=str(raw.get("source", "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT,
                                "the sync point is not one a provider made (start over with none)") from None

    def check(self, provider: str, account_id: str) -> None:
        """ProviderError INVALID_ARGUMENT unless this sync point belongs to ``provider`` and ``account_id``."""
        if self.provider != provider or self.account_id != account_id:
            raise ProviderError(grpc.StatusCode.INVALID_ARGUMENT,
                                f"the sync point is for {self.provider} act_{self.account_id}, not {provider} "
                                f"act_{account_id}")


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

    async def changes_since(self, account_id: str,
                            sync_point: SyncPoint | None) -> tuple[list[InsightRow], SyncPoint]:
        """Rows of new or changed days since ``sync_point`` (None = first sync), and the next sync point."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


def day_digest(rows: Iterable[InsightRow]) -> str:
    """SHA-256 (hex, 32 chars) of one day's rows in key order, ignoring ``fetched_at``.

    Rows are encoded with the shared protobuf mapping (deterministic
    serialisation), so any change of any field changes the digest.
    """
    h = hashlib.sha256()
    for row in sorted(rows, key=lambda r: (r.ad_id, r.date_start)):
        blob = row_to_proto(dataclasses.replace(row, fetched_at=None)).SerializeToString(deterministic=True)
        h.update(len(blob).to_bytes(4, "big"))
        h.update(blob)
    return h.hexdigest()[:32]


def diff_by_day(rows: Iterable[InsightRow], previous: Mapping[str, str],
                keep_from: date | None = None) -> tuple[list[InsightRow], dict[str, str]]:
    """(rows of days whose digest is not in ``previous``, digests of the days >= ``keep_from``).

    ``keep_from`` None keeps every day's digest. Rows are returned sorted by (date_start, ad_id).
    """
    by_day: dict[date, list[InsightRow]] = defaultdict(list)
    for row in rows:
        by_day[row.date_start].append(row)
    changed: list[InsightRow] = []
    digests: dict[str, str] = {}
    for day in sorted(by_day):
        digest = day_digest(by_day[day])
        if previous.get(day.isoformat()) != digest:
            changed += sorted(by_day[day], key=lambda r: r.ad_id)
        if keep_from is None or day >= keep_from:
            digests[day.isoformat()] = digest
    return changed, digests
