"""FatigueEngine over a real gRPC loopback server (GrpcHost on 127.0.0.1:0)."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_server import insecure_channel
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_engine_pb2_grpc, fatigue_pb2
from services.fatigue_engine.proto_convert import row_to_proto
from services.fatigue_engine.server import build_host
from services.fatigue_engine.servicer import SERVICE_NAME
from tests.fatigue_engine.example import worked_example

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def channel():
    host = build_host("127.0.0.1", 0)
    port = await host.start([SERVICE_NAME])
    ch = insecure_channel(f"127.0.0.1:{port}")
    yield ch
    await ch.close()
    await host.stop(0)


def series(rows, ad_id=None) -> fatigue_pb2.AdSeries:
    return fatigue_pb2.AdSeries(ad_id=ad_id or rows[0].ad_id, days=[row_to_proto(r) for r in rows])


async def call(channel, *ads, **kw) -> fatigue_engine_pb2.ScoreAdsResponse:
    stub = fatigue_engine_pb2_grpc.FatigueEngineStub(channel)
    return await stub.ScoreAds(fatigue_engine_pb2.ScoreAdsRequest(ads=list(ads), **kw), timeout=10)


async def test_health_and_a_good_call(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    thin = worked_example(divisor=100, ad_id="222")
    full = worked_example(ad_id="111")
    unknown_ranks = worked_example(rankings=False, ad_id="333")
    response = await call(channel, series(thin), series(full), series(unknown_ranks),
                          account_id="act_1001", insights_version=42)
    assert [r.ad_id for r in response.results] == ["222", "111", "333"]
    assert all(r.insights_version == 42 for r in response.results)
    assert all(r.account_id == "1001" for r in response.results)

    a, b, c = response.results
    assert a.level == fatigue_pb2.INSUFFICIENT_DATA and not a.HasField("score") and "overlap" in a.insufficient_reason
    assert b.level == fatigue_pb2.WARNING and b.score == pytest.approx(57.92, abs=1e-3)
    assert [x.name for x in b.components] == ["ctr_decay", "frequency", "reach_saturation",
                                              "cpm_inflation", "cpa_inflation", "ranking_drop"]
    assert b.components[0].details["z"] == pytest.approx(5.685, abs=1e-3)
    assert b.forecast.days_to_critical == 4
    assert list(b.forecast.projected_scores) == pytest.approx([63.97, 69.81, 74.52, 76.67], abs=1e-3)
    assert (b.baseline.since, b.baseline.until, b.baseline.delivery_days) == ("2026-01-01", "2026-01-03", 3)
    assert b.recent.impressions == 30_000 and b.delivery_days == 10 and b.impressions == 100_000
    assert c.score == pytest.approx(58.80, abs=1e-3)
    assert not c.components[5].available and c.components[5].unavailable_reason
    assert not c.components[5].HasField("score")


async def test_retargeting_config_is_applied(channel) -> None:
    config = fatigue_pb2.FatigueConfig(audience_type=fatigue_pb2.RETARGETING)
    response = await call(channel, series(worked_example()), config=config)
    freq = response.results[0].components[1]
    assert (freq.band_lo, freq.band_hi, freq.score) == (4.0, 8.0, 0.0)


async def test_a_config_the_engine_cannot_honour_is_refused(channel) -> None:
    """Attacker trial finding: an unknown audience_type scored as prospecting and any text was a conversion."""
    s = series(worked_example())
    await expect_invalid(channel, s, config=fatigue_pb2.FatigueConfig(audience_type=7),
                         match="config.audience_type 7 is not one of")
    for bad in ("Lead", "lead; drop", "x" * 101, ".lead", "lead__"):
        details = await expect_invalid(channel, s, config=fatigue_pb2.FatigueConfig(conversion_action_type=bad),
                                       match="is not a Graph API action_type")
        assert len(details) < 300, details
    for good in ("purchase", "offsite_conversion.fb_pixel_lead", "offsite_conversion.custom.1234567890",
                 "onsite_conversion.messaging_conversation_started_7d"):
        assert (await call(channel, s, config=fatigue_pb2.FatigueConfig(conversion_action_type=good))).results


async def test_empty_request_gives_empty_response(channel) -> None:
    assert len((await call(channel)).results) == 0


async def expect_invalid(channel, *ads, match: str, **kw) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(channel, *ads, **kw)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details()
    assert match in details, details
    return details


async def test_row_of_another_ad(channel) -> None:
    s = series(worked_example(ad_id="111"))
    s.days[4].ad_id = "999"
    details = await expect_invalid(channel, series(worked_example(ad_id="555")), s, match="belongs to ad '999'")
    assert "ads[1].days[4]" in details


async def test_unparsable_date(channel) -> None:
    s = series(worked_example())
    s.days[2].date_start = "2026-02-30"
    details = await expect_invalid(channel, s, match="'2026-02-30' is not a YYYY-MM-DD date")
    assert "ads[0].days[2]" in details
    s.days[2].date_start = "yesterday"
    await expect_invalid(channel, s, match="'yesterday' is not a YYYY-MM-DD date")


async def test_duplicate_date(channel) -> None:
    s = series(worked_example())
    s.days[3].date_start = s.days[3].date_stop = s.days[1].date_start
    await expect_invalid(channel, s, match="duplicate date 2026-01-02 (also ads[0].days[1])")


async def test_bad_values(channel) -> None:
    s = series(worked_example())
    s.days[0].spend = "12,50"
    await expect_invalid(channel, s, match="spend '12,50' is not a decimal number")
    s = series(worked_example())
    s.days[0].quality_ranking = "GOOD"
    await expect_invalid(channel, s, match="quality_ranking 'GOOD' is not one of")
    s = series(worked_example())
    s.days[0].actions["lead"] = "many"
    await expect_invalid(channel, s, match="actions['lead'] 'many' is not a decimal number")


async def test_row_of_another_account_and_bad_account_id(channel) -> None:
    s = series(worked_example())
    await expect_invalid(channel, s, account_id="act_2002", match="belongs to account '1001'")
    await expect_invalid(channel, s, account_id="act_x", match="is not a Meta ad account id")
