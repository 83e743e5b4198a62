"""Fan-out of committed changes to the subscribers of this gateway process (R5, issue 5).

Each subscriber has a bounded queue. A change is offered only to subscribers
of its account whose range it touches (no over-notification). A subscriber
whose queue is full is not waited for: its queue is cleared and it is marked
*lagging*, and its stream then sends one JUMP with the full state at the
latest version — memory stays bounded and a slow subscriber never delays the
others.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from services.cache_gateway.change_feed import Change
from services.common.dates import DateRange

DEFAULT_QUEUE_SIZE = 64


class Subscriber:
    def __init__(self, account_id: str, days: DateRange, queue_size: int = DEFAULT_QUEUE_SIZE):
        self.account_id = account_id
        self.days = days
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(queue_size)
        self.lagging = False
        self.closed = False

    def offer(self, change: Change) -> None:
        if self.lagging or self.closed:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.lagging = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # wake the stream so it sends the JUMP

    def close(self) -> None:
        """End the stream (server shutdown)."""
        self.closed = True
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class SubscriptionHub:
    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE):
        self.queue_size = queue_size
        self._by_account: dict[str, set[Subscriber]] = defaultdict(set)

    def subscribe(self, account_id: str, days: DateRange) -> Subscriber:
        sub = Subscriber(account_id, days, self.queue_size)
        self._by_account[account_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._by_account.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_account[sub.account_id]

    def publish(self, change: Change) -> None:
        subs = self._by_account.get(change.account_id)
        if not subs:
            return
        for sub in list(subs):
            if change.touches(sub.days.since, sub.days.until):
                sub.offer(change)

    def resync(self) -> None:
        """The change history was lost: every subscriber gets a JUMP from L2."""
        for subs in self._by_account.values():
            for sub in subs:
                sub.lagging = True
                try:
                    sub.queue.put_nowait(None)
                except asyncio.QueueFull:
                    pass

    def close_all(self) -> None:
        for subs in list(self._by_account.values()):
            for sub in list(subs):
                sub.close()

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_account.values())
