"""GetFatigue's scoring (FatigueScorer) against a real fatigue engine on loopback, with the real account.

The results of scoring a range by series key — the account's series shipped once per version —
and of a memoised answer are exactly those of shipping the range's rows as before; an engine
that lost the series is handed it again; bad ranges are refused by the engine.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone

import grpc
import pytest

from services.cache_gateway.account_replica import AccountReplica
from services.cache_gateway.fatigue_scoring import FatigueScorer
from services.cache_gateway.insights_service import FRESH, ReadResult
from services.cache_gateway.l2_store import AccountImage, AccountState
from services.common.ads_manager_csv import load_csv
from services.common.dates import DateRange
from services.common.grpc_server import insecure_channel
from services.common.pb.adfatigue.v1 import (
    cache_gateway_pb2 as gw, fatigue_engine_pb2, fatigue_engine_pb2_grpc, fatigue_pb2,
)
from services.common.row_proto import row_to_proto
from services.fatigue_engine.server import build_host
from services.fatigue_engine.servicer import SERVICE_NAME
from tests.shared_data import require_real_csv

ACCOUNT = "1001"
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


class Replicas:
    """Stands in for ReplicaCache.peek (the scorer only peeks)."""

    def __init__(self, replica):
        self.replica = replica

    def peek(self, account_id):
        return self.replica


@pytest.fixture
def replica():
    rows = load_csv(require_real_csv(), ACCOUNT)
    image = AccountImage(AccountState(ACCOUNT, 7, 7, "Asia/Kuala_Lumpur"),
                         [(r.ad_id, r.date_start, 7, r) for r in rows], {r.date_start: T0 for r in rows}, [])
    return AccountReplica.from_image(image)


@pytest.fixture
async def engine():
    host = build_host("127.0.0.1", 0)
    port = await host.start([SERVICE_NAME])
    yield host, f"127.0.0.1:{port}"
    await host.stop(0)


def as_response_results(scored: fatigue_engine_pb2.ScoreAdsResponse) -> bytes:
    """``GetFatigueResponse(results=scored.results)`` serialized deterministically, as the scorer returns it."""
    return gw.GetFatigueResponse(results=scored.results).SerializeToString(deterministic=True)


def read(replica: AccountReplica, days: DateRange) -> ReadResult:
    snap, entries = replica.read(days)
    return ReadResult(snap, FRESH, "", set(), [], None, entries=entries, account_version=replica.version,
                      replica=replica)


async def shipped_the_old_way(channel, days: DateRange, snap, config) -> fatigue_engine_pb2.ScoreAdsResponse:
    by_ad = defaultdict(list)
    for row in snap.rows:
        by_ad[row.ad_id].append(row_to_proto(row))
    request = fatigue_engine_pb2.ScoreAdsRequest(
        account_id=ACCOUNT, config=config, insights_version=snap.version,
        ads=[fatigue_pb2.AdSeries(ad_id=a, days=rows) for a, rows in sorted(by_ad.items())])
    return await fatigue_engine_pb2_grpc.FatigueEngineStub(channel).ScoreAds(request, timeout=30)


async def test_ranges_scored_by_key_equal_shipping_the_rows(replica, engine):
    _, address = engine
    channel = insecure_channel(address)
    scorer = FatigueScorer(channel, Replicas(replica))
    last = date(2026, 4, 29)
    ranges = [DateRange(last - timedelta(days=n - 1), last) for n in (7, 14, 28)] + [
        DateRange(date(2025, 10, 29), last), DateRange(date(2025, 12, 1), date(2026, 1, 15)),
        DateRange(date(2025, 1, 1), date(2025, 1, 31))]  # the last: no rows at all
    configs = [fatigue_pb2.FatigueConfig(), fatigue_pb2.FatigueConfig(audience_type=fatigue_pb2.RETARGETING)]
    scored = 0
    try:
        for config in configs:
            for days in ranges:
                result = read(replica, days)
                got = await scorer.score(ACCOUNT, days, result, config, config.SerializeToString(deterministic=True))
                want = await shipped_the_old_way(channel, days, result.snapshot, config)
                assert got == as_response_results(want)
                scored += len(want.results)
        assert scorer.shipments == 1  # the account's series went over once for this version
        assert scored > 0
        again = await scorer.score(ACCOUNT, ranges[0], read(replica, ranges[0]), configs[0],
                                   configs[0].SerializeToString(deterministic=True))
        assert scorer.memo_hits == 1 and again
    finally:
        await channel.close()


async def test_an_engine_that_lost_the_series_is_sent_it_again(replica, engine):
    host, address = engine
    channel = insecure_channel(address)
    scorer = FatigueScorer(channel, Replicas(replica))
    week = DateRange(date(2026, 4, 23), date(2026, 4, 29))
    config = fatigue_pb2.FatigueConfig()
    try:
        await scorer.score(ACCOUNT, week, read(replica, week), config, b"")
        host.server  # the same engine process; forget what it keeps, as a restarted engine would
        for servicer_cache in _engine_caches(host):
            servicer_cache.clear()
        month = DateRange(date(2026, 4, 1), date(2026, 4, 29))
        got = await scorer.score(ACCOUNT, month, read(replica, month), config, b"")
        want = await shipped_the_old_way(channel, month, read(replica, month).snapshot, config)
        assert got == as_response_results(want) and scorer.shipments == 2
    finally:
        await channel.close()


def _engine_caches(host):
    import gc
    from services.fatigue_engine.series_cache import SeriesCache
    # type(), not isinstance(): isinstance on a dead weakref.proxy left by an earlier test raises ReferenceError
    return [o for o in gc.get_objects() if type(o) is SeriesCache]


async def test_the_engine_refuses_an_unknown_key_and_bad_ranges(engine):
    _, address = engine
    channel = insecure_channel(address)
    stub = fatigue_engine_pb2_grpc.FatigueEngineStub(channel)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.ScoreAds(fatigue_engine_pb2.ScoreAdsRequest(series_key="nobody@1"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "send the ads" in unknown.value.details()
        for since, until in (("2026-04-30", "2026-04-01"), ("2026-4-1", ""), ("yesterday", "")):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.ScoreAds(fatigue_engine_pb2.ScoreAdsRequest(since=since, until=until), timeout=10)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await channel.close()
