"""Series a caller sent under a ``series_key``, kept parsed so any range of them is scored without
shipping or decoding the rows again (issue 14: the gateway hands each account's daily series over
once per version).

Bounded by entries (``max_entries``, least recently used dropped first); a key is the caller's
promise that its series never change (the gateway's key holds the account version). Thread-safe:
``ScoreAds`` scores in worker threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from services.common.insight_row import InsightRow

DEFAULT_MAX_ENTRIES = 64

Series = list[tuple[str, list[InsightRow]]]  # (ad_id, rows in request order), as build_series returns


class SeriesCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, Series]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def put(self, key: str, account_id: str, series: Series) -> None:
        with self._lock:
            self._entries[key] = (account_id, series)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get(self, key: str) -> tuple[str, Series] | None:
        """(account_id, series) kept under ``key``, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def __len__(self) -> int:
        return len(self._entries)
