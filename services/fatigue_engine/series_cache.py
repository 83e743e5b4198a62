"""Series a caller sent under a ``series_key``, kept parsed so any range of them is scored without
shipping or decoding the rows again (issue 14: the gateway hands each account's daily series over
once per version), and the scores of the ranges asked so far.

- Each kept ad's rows are sorted by date once, so a range's rows are found by bisection
  (``KeptAd.bounds``), not by scanning every row of the account.
- A score is a pure function of the ad's rows and the config (``scoring.score_ad``), so the result of
  an ad whose rows in a range are the same slice as in a range scored before is reused: keyed by
  (series key, the ad's place in it, first and last row of the slice, config bytes). A lifetime widget whose end date
  moves re-scores only the ads that delivered since; an ad that ended earlier is looked up.

Bounded by entries (series: ``max_entries``; results: ``max_results``; least recently used dropped
first); a key is the caller's promise that its series never change (the gateway's key holds the
account version). Thread-safe: ``ScoreAds`` scores in worker threads.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date

from cachetools import LRUCache

from services.common.insight_row import InsightRow

DEFAULT_MAX_ENTRIES = 64
#: Memoised per-ad results (a FatigueResult of the sample account is about 2.6 KiB of Python objects, measured
#: with tracemalloc: about 25 MiB at most).
DEFAULT_MAX_RESULTS = 10_000

Series = list[tuple[str, list[InsightRow]]]  # (ad_id, rows in request order), as build_series returns


@dataclass(frozen=True, slots=True)
class KeptAd:
    """One ad of a kept series: its rows sorted by ``date_start`` and their dates (parallel lists)."""

    ad_id: str
    rows: list[InsightRow]
    dates: list[date]

    @classmethod
    def of(cls, ad_id: str, rows: list[InsightRow]) -> "KeptAd":
        ordered = sorted(rows, key=lambda r: r.date_start)
        return cls(ad_id, ordered, [r.date_start for r in ordered])

    def bounds(self, since: date | None, until: date | None) -> tuple[int, int]:
        """``(lo, hi)``: the rows dated in [since, until] are ``rows[lo:hi]`` (None: unbounded)."""
        lo = bisect_left(self.dates, since) if since else 0
        hi = bisect_right(self.dates, until) if until else len(self.dates)
        return lo, max(lo, hi)


class _Counted:
    """A least-recently-used table (``cachetools.LRUCache``) that counts its hits and misses; callers hold the lock."""

    def __init__(self, maxsize: int) -> None:
        self.table: LRUCache = LRUCache(maxsize=max(1, maxsize))
        self.hits = self.misses = 0

    def get(self, key):
        found = self.table.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def __len__(self) -> int:
        return len(self.table)


class SeriesCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_results: int = DEFAULT_MAX_RESULTS):
        if max_entries < 1 or max_results < 0:
            raise ValueError("max_entries must be >= 1 and max_results >= 0")
        self.max_entries = max_entries
        self.max_results = max_results
        self.series = _Counted(max_entries)    # key -> (account_id, kept ads); .hits / .misses
        self.results = _Counted(max_results)   # (key, ad index, lo, hi, config) -> FatigueResult; .hits / .misses
        self._lock = threading.Lock()

    def put(self, key: str, account_id: str, series: Series) -> list[KeptAd]:
        """Keep ``series`` under ``key``; returns its kept ads (in the order given)."""
        kept = [KeptAd.of(ad_id, rows) for ad_id, rows in series]
        with self._lock:
            self.series.table[key] = (account_id, kept)
        return kept

    def get(self, key: str) -> tuple[str, list[KeptAd]] | None:
        """(account_id, the kept ads) under ``key``, or None."""
        with self._lock:
            return self.series.get(key)

    def result(self, key: tuple):
        """The result memoised under ``key`` (see the module doc), or None."""
        with self._lock:
            return self.results.get(key)

    def keep_result(self, key: tuple, result) -> None:
        if self.max_results == 0:
            return
        with self._lock:
            self.results.table[key] = result

    def clear(self) -> None:
        """Forget every series and result (what a restarted engine knows)."""
        with self._lock:
            self.series.table.clear()
            self.results.table.clear()

    def __len__(self) -> int:
        return len(self.series)
