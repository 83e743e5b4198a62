"""Fan-out: only matching subscribers are notified; a slow one is coalesced, never grows or blocks others."""

import asyncio
from datetime import date

from services.cache_gateway.change_feed import Change
from services.cache_gateway.subscriptions import SubscriptionHub
from services.common.dates import DateRange
from services.common.insight_row import InsightRow

JAN = DateRange(date(2026, 1, 1), date(2026, 1, 31))


def change(version: int, day: date = date(2026, 1, 5), account: str = "1") -> Change:
    return Change(account, version, rows=[InsightRow(account_id=account, ad_id="9", date_start=day, date_stop=day)])


async def test_only_subscribers_of_the_account_and_range_are_offered_a_change():
    hub = SubscriptionHub()
    mine = hub.subscribe("1", JAN)
    other_days = hub.subscribe("1", DateRange(date(2026, 2, 1), date(2026, 2, 2)))
    other_account = hub.subscribe("2", JAN)
    hub.publish(change(1))
    assert mine.queue.qsize() == 1 and other_days.queue.qsize() == 0 and other_account.queue.qsize() == 0


async def test_slow_subscriber_is_coalesced_and_bounded_while_fast_one_gets_everything():
    hub = SubscriptionHub(queue_size=8)
    slow, fast = hub.subscribe("1", JAN), hub.subscribe("1", JAN)
    received = []

    async def drain():
        while len(received) < 1000:
            received.append((await fast.queue.get()).version)

    reader = asyncio.create_task(drain())
    for v in range(1, 1001):
        hub.publish(change(v))
        assert slow.queue.qsize() <= 8
        await asyncio.sleep(0)
    await asyncio.wait_for(reader, 5)
    assert received == list(range(1, 1001))
    assert slow.lagging and slow.queue.get_nowait() is None  # woken to send one JUMP


async def test_close_wakes_every_stream():
    hub = SubscriptionHub(queue_size=2)
    sub = hub.subscribe("1", JAN)
    for v in range(5):
        hub.publish(change(v + 1))
    hub.close_all()
    assert sub.closed


async def test_a_large_fan_out_yields_between_batches_and_keeps_each_subscribers_order():
    hub = SubscriptionHub(queue_size=64, batch_size=10)
    subs = [hub.subscribe("1", JAN) for _ in range(35)]
    hub.publish(change(1))
    hub.publish(change(2))
    assert [s.queue.qsize() for s in subs].count(1) == 10  # the first batch at once, the rest later
    for _ in range(20):
        await asyncio.sleep(0)
    assert all([s.queue.get_nowait().version for _ in range(2)] == [1, 2] for s in subs)
    assert hub.delivered == 70


def test_which_ranges_a_change_touches_matches_the_definition():
    """A change touches [since, until] when one of its rows' or removals' dates is in it, or a score's span overlaps it
    (``Change.toucher`` bisects the sorted dates; checked against that definition on random changes and ranges)."""
    import random
    from datetime import timedelta

    rng = random.Random(5)
    base = date(2026, 1, 1)
    for _ in range(300):
        days = [base + timedelta(days=rng.randrange(60)) for _ in range(rng.randrange(0, 6))]
        removed = [("7", base + timedelta(days=rng.randrange(60))) for _ in range(rng.randrange(0, 3))]
        scores = [(b"", base + timedelta(days=a), base + timedelta(days=a + rng.randrange(10)))
                  for a in (rng.randrange(60) for _ in range(rng.randrange(0, 2)))]
        c = Change("1", 1, rows=[InsightRow(account_id="1", ad_id="9", date_start=d, date_stop=d) for d in days],
                   removed=removed, scores=scores)
        touches = c.toucher()
        for _ in range(20):
            since = base + timedelta(days=rng.randrange(-5, 65))
            until = since + timedelta(days=rng.randrange(0, 15))
            expected = any(since <= d <= until for d in days + [d for _, d in removed]) or any(
                first <= until and since <= last for _, first, last in scores)
            assert touches(since, until) == expected == c.touches(since, until), (days, removed, scores, since, until)
