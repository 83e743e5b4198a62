"""One leader with a fencing token; a shared, fenced schedule; the gateway-side check accepts only the current
leader's token (the lease's durable record), from the scheduler identity alone, also across a Redis restart."""

from __future__ import annotations

import contextlib
import uuid
from datetime import date, datetime, timedelta, timezone

import grpc
import pytest
import redis.asyncio as aioredis

from services.cache_gateway.demand_fencing import (
    FENCING_METADATA_KEY, FencingCheck, FencingRefused, token_from_metadata,
)
from services.common.auth import OPERATOR, Principal, ServiceToken
from services.common.freshness import FreshnessClass
from services.common.lease_record import LeaseRecords
from services.common.settings import lease_key_for
from services.common.dates import DateRange
from services.common.grpc_server import GrpcHost
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc as gw_grpc
from services.scheduler.cycle import RefreshFailed
from services.scheduler.leader_lease import LocalLease, LocalSchedule, RedisLease, RedisSchedule
from services.scheduler.planning import WorkItem
from services.scheduler.sources import GatewayRefresher
from tests.private_redis import PrivateRedis


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


async def test_exactly_one_holder_and_every_acquisition_takes_a_higher_token(redis_client, prefix):
    clock = Clock()
    key = prefix + "leader"
    a = RedisLease(redis_client, "a", key, ttl_ms=1000, clock=clock)
    b = RedisLease(redis_client, "b", key, ttl_ms=1000, clock=clock)
    assert await a.try_acquire_or_renew() and a.holds()
    assert not await b.try_acquire_or_renew() and not b.holds()
    assert await a.leader() == await b.leader() == "a"
    assert await a.try_acquire_or_renew()  # renewing keeps the token
    first = a.fencing_token
    await redis_client.delete(key)  # the lease expired while a was paused
    assert await b.try_acquire_or_renew() and b.fencing_token > first
    assert not await a.try_acquire_or_renew() and not a.holds()
    await b.release()
    assert await a.try_acquire_or_renew() and a.fencing_token > b.fencing_token


async def test_a_leader_that_cannot_renew_stops_believing_it_leads(redis_client, prefix):
    clock = Clock()
    lease = RedisLease(redis_client, "a", prefix + "leader", ttl_ms=3000, clock=clock)
    assert await lease.try_acquire_or_renew()
    clock.t += 2.5  # beyond 80 % of the ttl (2.4 s) without a renewal
    assert not lease.holds()
    with pytest.raises(ValueError):
        RedisLease(redis_client, "a", prefix + "x", ttl_ms=10)


def test_the_single_machine_fallback_always_leads():
    lease = LocalLease("me")
    assert lease.holds() and lease.fencing_token == 1


async def test_cycles_are_claimed_once_in_order_and_never_by_a_deposed_leader(redis_client, prefix):
    key = prefix + "leader"
    a = RedisLease(redis_client, "a", key, ttl_ms=5000)
    assert await a.try_acquire_or_renew()
    schedule = RedisSchedule(redis_client, key)
    first = await schedule.claim(a.fencing_token, 60, False, "a")
    assert first.cycle == 1
    again = await schedule.claim(a.fencing_token, 60, False, "a")
    assert again.cycle == 0 and 55 < again.wait_s <= 60  # not due yet
    await schedule.finish(1, datetime.now(timezone.utc), {"cycle": 1, "holder": "a"})
    await redis_client.delete(key)
    b = RedisLease(redis_client, "b", key, ttl_ms=5000)
    assert await b.try_acquire_or_renew()
    assert (await schedule.claim(a.fencing_token, 60, True, "a")).cycle == -1  # deposed, even when forced
    assert (await schedule.claim(b.fencing_token, 60, False, "b")).cycle == 0  # the schedule carries over
    forced = await schedule.claim(b.fencing_token, 60, True, "b")
    assert forced.cycle == 2
    state = await schedule.state()
    assert (state.cycle, state.holder, state.token, state.finished) == (2, "b", b.fencing_token, None)
    assert [h["cycle"] for h in await schedule.history()] == [1]


async def test_local_schedule_runs_at_most_once_per_interval():
    now = [datetime(2026, 3, 4, tzinfo=timezone.utc)]
    schedule = LocalSchedule(clock=lambda: now[0])
    assert (await schedule.claim(1, 600, False, "me")).cycle == 1
    assert (await schedule.claim(1, 600, False, "me")).cycle == 0
    now[0] += timedelta(seconds=600)
    assert (await schedule.claim(1, 600, False, "me")).cycle == 2
    assert (await schedule.claim(1, 600, True, "me")).cycle == 3
    await schedule.finish(3, now[0], {"cycle": 3})
    assert (await schedule.state()).summary == {"cycle": 3}


# -- the gateway-side check ------------------------------------------------------------------------

SCHEDULER_CALLER = Principal("scheduler", frozenset({"*"}), frozenset({"scheduler"}))
READER = Principal("someone", frozenset({"1001"}), frozenset())


@pytest.fixture
async def records(mongo):
    client, db_name = mongo
    return LeaseRecords.of(client[db_name])


async def test_only_the_current_leaders_token_passes(redis_client, prefix, records):
    key = prefix + "leader"
    old = RedisLease(redis_client, "old", key, ttl_ms=5000, records=records)
    assert await old.try_acquire_or_renew()
    check, other_replica = FencingCheck(records, key), FencingCheck(records, key)
    await check.check(old.fencing_token)
    await redis_client.delete(key)
    new = RedisLease(redis_client, "new", key, ttl_ms=5000, records=records)
    assert await new.try_acquire_or_renew() and new.fencing_token == old.fencing_token + 1
    assert (await records.current(key)).holder == "new"
    with pytest.raises(FencingRefused) as err:  # refused from the moment the new leader is elected
        await other_replica.check(old.fencing_token)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "no longer the leader" in err.value.message
    with pytest.raises(FencingRefused) as err:  # a token nobody was issued is no way in either
        await check.check(new.fencing_token + 1000)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "never issued" in err.value.message
    await check.check(new.fencing_token)  # ... and it did not raise the bar: the leader still passes
    await check.check(new.fencing_token)
    assert await check.check_call((("authorization", "Bearer x"),), READER) is None  # not a scheduler call
    assert await check.check_call(((FENCING_METADATA_KEY, str(new.fencing_token)),), SCHEDULER_CALLER) == \
        new.fencing_token


async def test_a_reader_or_operator_presenting_a_token_is_refused_and_changes_nothing(redis_client, prefix,
                                                                                      records):
    key = prefix + "leader"
    leader = RedisLease(redis_client, "a", key, ttl_ms=5000, records=records)
    assert await leader.try_acquire_or_renew()
    check = FencingCheck(records, key)
    operator = Principal("ops", frozenset({"*"}), frozenset({OPERATOR}))
    for caller in (READER, operator):
        with pytest.raises(FencingRefused) as err:
            await check.check_call(((FENCING_METADATA_KEY, "999999999999"),), caller)
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED and "scheduler" in err.value.message
    await check.check_call(((FENCING_METADATA_KEY, str(leader.fencing_token)),), SCHEDULER_CALLER)
    with pytest.raises(FencingRefused) as err:  # the scheduler must fence its refreshes
        await check.check_call((), SCHEDULER_CALLER)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_a_malformed_token_is_an_invalid_argument():
    for bad in ("abc", "0", "-3", "", "1" * 40, "١٢"):
        with pytest.raises(FencingRefused) as err:
            token_from_metadata(((FENCING_METADATA_KEY, bad),))
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert token_from_metadata(((FENCING_METADATA_KEY, b"7"),)) == 7
    assert lease_key_for("p:") == "p:scheduler:leader"


async def test_the_local_lease_takes_a_durable_token_too(records):
    key = f"local-{uuid.uuid4().hex}"
    first, second = LocalLease("me", records, key), LocalLease("me-again", records, key)
    assert not first.holds()
    assert await first.try_acquire_or_renew() and first.holds() and first.fencing_token == 1
    assert await second.try_acquire_or_renew() and second.fencing_token == 2  # a restart: a new, higher token
    assert await first.try_acquire_or_renew() and first.fencing_token == 1  # renewing keeps it
    with pytest.raises(FencingRefused):
        await FencingCheck(records, key).check(first.fencing_token)


class FencedGateway(gw_grpc.CacheGatewayServicer):
    """A Refresh wired the way the gateway is: enforce the fence for the scheduler identity, then refresh."""

    def __init__(self, fencing: FencingCheck):
        self.fencing = fencing
        self.seen: list[tuple[gw.RefreshRequest, dict]] = []

    async def Refresh(self, request, context):
        await self.fencing.enforce(context, SCHEDULER_CALLER)
        self.seen.append((request, dict(context.invocation_metadata())))
        return gw.RefreshResponse(account_id=request.account_id, upstream_calls=1, rows_changed=2, version=9)


@contextlib.asynccontextmanager
async def fenced_gateway(fencing: FencingCheck):
    servicer = FencedGateway(fencing)
    host = GrpcHost("127.0.0.1:0")
    gw_grpc.add_CacheGatewayServicer_to_server(servicer, host.server)
    port = await host.start(["adfatigue.v1.CacheGateway"])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield servicer, gw_grpc.CacheGatewayStub(channel)
    finally:
        await channel.close()
        await host.stop(0)


ITEM = WorkItem("1001", DateRange(date(2026, 3, 1), date(2026, 3, 3)), FreshnessClass.PROVISIONAL,
                datetime(2026, 3, 4, tzinfo=timezone.utc), None, 1, 3)


async def test_the_scheduler_sends_its_token_and_a_deposed_one_gets_failed_precondition(redis_client, prefix,
                                                                                        records):
    key = prefix + "leader"
    token = ServiceToken("scheduler", {"JWT_HS256_SECRET": "s" * 40})
    async with fenced_gateway(FencingCheck(records, key)) as (servicer, stub):
        refresher = GatewayRefresher(stub, token)
        leader = RedisLease(redis_client, "a", key, ttl_ms=5000, records=records)
        assert await leader.try_acquire_or_renew()
        outcome = await refresher.refresh(ITEM, leader.fencing_token)
        assert (outcome.upstream_calls, outcome.rows_changed, outcome.version) == (1, 2, 9)
        request, metadata = servicer.seen[0]
        assert (request.account_id, request.since, request.until, request.force) == \
            ("1001", "2026-03-01", "2026-03-03", False)
        assert metadata[FENCING_METADATA_KEY] == str(leader.fencing_token)
        assert metadata["authorization"].startswith("Bearer ")
        await redis_client.delete(key)
        successor = RedisLease(redis_client, "b", key, ttl_ms=5000, records=records)
        assert await successor.try_acquire_or_renew()
        with pytest.raises(RefreshFailed) as err:
            await refresher.refresh(ITEM, leader.fencing_token)
        assert err.value.code == "FAILED_PRECONDITION" and "fencing token" in err.value.message
        assert len(servicer.seen) == 1


async def test_tokens_keep_increasing_when_redis_restarts_empty_between_leaderships(tmp_path, records):
    """Finding: after a Redis restart the counter started again at 1 and a replayed higher token passed."""
    key = f"adfatigue-restart-{uuid.uuid4().hex[:8]}:scheduler:leader"
    server = PrivateRedis(tmp_path).start()
    try:
        async with fenced_gateway(FencingCheck(records, key)) as (servicer, stub):
            refresher = GatewayRefresher(stub, ServiceToken("scheduler", {"JWT_HS256_SECRET": "s" * 40}))
            client = aioredis.from_url(server.url)
            first = RedisLease(client, "first", key, ttl_ms=5000, records=records)
            assert await first.try_acquire_or_renew()
            await refresher.refresh(ITEM, first.fencing_token)
            schedule = RedisSchedule(client, key)
            assert (await schedule.claim(first.fencing_token, 60, True, "first")).cycle == 1
            await client.aclose()

            server.restart()  # every key is gone: the lease, key:fence, the schedule
            client = aioredis.from_url(server.url)
            assert await client.dbsize() == 0
            second = RedisLease(client, "second", key, ttl_ms=5000, records=records)
            assert await second.try_acquire_or_renew()
            assert second.fencing_token > first.fencing_token  # not 1 again
            await refresher.refresh(ITEM, second.fencing_token)
            for stale in (first.fencing_token, second.fencing_token + 1):  # the old leader's, a forged higher one
                with pytest.raises(RefreshFailed) as err:
                    await refresher.refresh(ITEM, stale)
                assert err.value.code == "FAILED_PRECONDITION"
            await refresher.refresh(ITEM, second.fencing_token)  # the leader is not locked out
            schedule = RedisSchedule(client, key)
            assert (await schedule.claim(first.fencing_token, 60, True, "first")).cycle == -1  # deposed
            assert (await schedule.claim(second.fencing_token, 60, True, "second")).cycle == 1
            assert len(servicer.seen) == 3
            await client.aclose()
    finally:
        server.stop()
