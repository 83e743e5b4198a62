"""Single-flight for upstream fetches within one process (DESIGN.md R3).

Concurrent requests for overlapping days share one upstream call: each
in-flight fetch registers the days it covers; a later request waits for the
days already in flight and fetches only the rest. The shared call runs in
its own task, so cancelling one waiting caller never cancels it.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Awaitable, Callable, Iterable

from services.common.dates import DateRange


class SingleFlight:
    def __init__(self) -> None:
        self._inflight: dict[tuple[str, date], asyncio.Future] = {}

    def split(self, account_id: str, days: Iterable[date]) -> tuple[list[date], list[asyncio.Future]]:
        """Divide ``days`` into those nobody is fetching and the futures of those in flight."""
        own, waits = [], {}
        for d in days:
            fut = self._inflight.get((account_id, d))
            if fut is None:
                own.append(d)
            else:
                waits[id(fut)] = fut
        return own, list(waits.values())

    def run(self, account_id: str, ranges: list[DateRange],
            fetch: Callable[[DateRange], Awaitable[object]]) -> list[asyncio.Future]:
        """Start one shared task per range; returns futures that complete when each is stored."""
        futures = []
        for rng in ranges:
            task = asyncio.ensure_future(fetch(rng))
            keys = [(account_id, d) for d in rng.days()]
            for key in keys:
                self._inflight[key] = task

            def _done(t: asyncio.Future, keys=keys) -> None:
                for key in keys:
                    if self._inflight.get(key) is t:
                        del self._inflight[key]
                if not t.cancelled():
                    t.exception()  # mark retrieved; callers re-raise via gather

            task.add_done_callback(_done)
            futures.append(task)
        return futures


_FAILED = object()


class SharedAnswers:
    """Concurrent identical computations, by key, share one result (the gateway's concurrent identical L1 misses:
    after a write, N callers of a widget no longer serialize the same snapshot or score the same range N times;
    issue 14).

    Unlike ``SingleFlight`` (day ranges of upstream fetches, shared in a task of their own), the first caller
    computes the result in its own task and the others wait for it; a waiter whose leader failed or was cancelled
    computes its own (and so gets its own error or status).
    """

    def __init__(self) -> None:
        self._inflight: dict[object, asyncio.Future] = {}

    async def run(self, key, compute: Callable[[], Awaitable[object]]) -> tuple[object, bool]:
        """``(result, joined)``: ``compute()``'s result, or that of the same key's computation under way
        (``joined`` True). Raises what this caller's own ``compute()`` raised."""
        pending = self._inflight.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            if shared is not _FAILED:
                return shared, True
            return await compute(), False
        future = self._inflight[key] = asyncio.get_running_loop().create_future()
        result = _FAILED
        try:
            result = await compute()
            return result, False
        finally:
            del self._inflight[key]
            future.set_result(result)

    def __len__(self) -> int:
        return len(self._inflight)
