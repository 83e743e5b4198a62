"""Fan-out of committed changes to the subscribers of this gateway process (R5, issue 5).

Each subscriber has a bounded queue. A change is offered only to subscribers
of its account whose range it touches (no over-notification). A subscriber
whose queue is full is not waited for: its queue is cleared and it is marked
*lagging*, and its stream then sends one JUMP with the full state at the
latest version — memory stays bounded and a slow subscriber never delays the
others.

Fan-out yields to the event loop between batches of ``batch_size``
subscribers (issue 14): the first batch is offered at once, the rest by a
background task, a batch per loop turn, so a change to 1,000 subscribers does
not hold up unary calls while every stream wakes. Later changes of an account
whose fan-out is still under way queue behind it, so every subscriber still
receives an account's changes in order.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque

from services.cache_gateway.change_feed import Change
from services.common.dates import DateRange

DEFAULT_QUEUE_SIZE = 64
#: Subscribers offered a change per turn of the event loop.
DEFAULT_BATCH_SIZE = 100


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
    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE, batch_size: int = DEFAULT_BATCH_SIZE):
        self.queue_size = queue_size
        self.batch_size = batch_size
        self._by_account: dict[str, set[Subscriber]] = defaultdict(set)
        self._backlog: deque[tuple[Change, list[Subscriber]]] = deque()  # fan-outs still under way
        self._worker: asyncio.Task | None = None
        self.delivered = 0

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
        touches = change.toucher()
        targets = [sub for sub in subs if touches(sub.days.since, sub.days.until)]
        if self._backlog:  # an earlier fan-out is still under way: keep the order
            self._backlog.append((change, targets))
            return
        self._offer(change, targets[: self.batch_size])
        if len(targets) > self.batch_size:
            self._backlog.append((change, targets[self.batch_size:]))
            if self._worker is None or self._worker.done():
                self._worker = asyncio.ensure_future(self._fan_out())

    def _offer(self, change: Change, subs: list[Subscriber]) -> None:
        for sub in subs:
            sub.offer(change)
        self.delivered += len(subs)

    async def _fan_out(self) -> None:
        while self._backlog:
            await asyncio.sleep(0)  # let the streams just woken, and unary calls, run
            change, subs = self._backlog[0]
            self._offer(change, subs[: self.batch_size])
            if len(subs) > self.batch_size:
                self._backlog[0] = (change, subs[self.batch_size:])
            else:
                self._backlog.popleft()

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
