"""L1: the gateway's in-process cache, bounded in bytes, LRU + TTL (DESIGN.md R2).

Entries are *serialized responses*: the exact bytes every caller of the same
request receives (R1: byte-identical answers), and their length is what the
byte budget counts. Built on cachetools.TLRUCache with a size function (least
recently used evicted first, expired entries dropped on access): each entry
lives ``ttl_s`` or until the first day it contains becomes due, whichever is
sooner, so L1 never answers FRESH for data the freshness policy calls due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Hashable

from cachetools import TLRUCache

#: Bytes charged per entry beyond its payload (key tuple, entry object, dict slot),
#: so many tiny entries cannot exceed the budget unnoticed.
ENTRY_OVERHEAD_BYTES = 256


@dataclass(frozen=True, slots=True)
class CachedResponse:
    payload: bytes      # a serialized response message
    version: int        # account insights version it was built from
    account_id: str
    max_age_s: float | None = None  # expire sooner than the cache's TTL (seconds from insertion)


class L1Cache:
    """``max_bytes`` (default 50 MiB) bounds the sum of payloads plus per-entry overhead.

    Keys are tuples whose second item is the account id (so a change to an
    account can evict all of that account's entries).
    """

    def __init__(self, max_bytes: int = 50 * 1024 * 1024, ttl_s: float = 60.0,
                 timer: Callable[[], float] = time.monotonic):
        if max_bytes < ENTRY_OVERHEAD_BYTES:
            raise ValueError(f"max_bytes must be at least {ENTRY_OVERHEAD_BYTES}")
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s

        def time_to_use(_key, entry: CachedResponse, now: float) -> float:
            age = ttl_s if entry.max_age_s is None else max(0.0, min(ttl_s, entry.max_age_s))
            return now + age

        self._cache: TLRUCache = TLRUCache(
            maxsize=max_bytes, ttu=time_to_use, timer=timer,
            getsizeof=lambda entry: len(entry.payload) + ENTRY_OVERHEAD_BYTES,
        )

    def get(self, key: Hashable) -> CachedResponse | None:
        return self._cache.get(key)

    def put(self, key: Hashable, entry: CachedResponse) -> bool:
        """Store an entry; False (not cached) when it alone is larger than the whole budget or already expired."""
        if len(entry.payload) + ENTRY_OVERHEAD_BYTES > self.max_bytes:
            return False
        if entry.max_age_s is not None and entry.max_age_s <= 0:
            return False
        self._cache[key] = entry
        return True

    def invalidate_account(self, account_id: str, below_version: int | None = None) -> int:
        """Drop the account's entries (only those older than ``below_version`` if given); returns how many."""
        doomed = [k for k, e in list(self._cache.items())
                  if e.account_id == account_id and (below_version is None or e.version < below_version)]
        for key in doomed:
            self._cache.pop(key, None)
        return len(doomed)

    def clear(self) -> None:
        self._cache.clear()

    @property
    def bytes_used(self) -> int:
        return int(self._cache.currsize)

    def __len__(self) -> int:
        return len(self._cache)
