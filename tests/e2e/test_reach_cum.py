"""With GATEWAY_WITH_REACH_CUM the gateway stores cumulative reach and the score uses frequency and saturation."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import grpc
import pytest

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc

pytestmark = pytest.mark.e2e

SYNTH = "act_900000000001"
Y = datetime.now(timezone.utc).astimezone(ZoneInfo("America/Los_Angeles")).date() - timedelta(days=1)


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("reach"), gateway_port=0, scheduler_interval_s=3600,
        mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"reach_{os.getpid()}", "GATEWAY_WITH_REACH_CUM": "1"},
    )
    with LocalSystem(config) as running:
        yield running


def test_cumulative_reach_is_stored_and_feeds_frequency(system):
    md = bearer(mint_token(system.jwt_secret, "reach-test", ["*"]))
    with grpc.insecure_channel(system.processes["cache_gateway"].address) as channel:
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(channel)
        since, until = (Y - timedelta(days=59)).isoformat(), Y.isoformat()
        insights = stub.GetInsights(gw.GetInsightsRequest(account_id=SYNTH, since=since, until=until),
                                    metadata=md, timeout=120)
        assert insights.rows and all(r.HasField("reach_cum") for r in insights.rows)
        by_ad: dict[str, list] = {}
        for r in insights.rows:
            by_ad.setdefault(r.ad_id, []).append(r)
        for rows in by_ad.values():  # deduplicated reach over a growing range never shrinks
            cum = [r.reach_cum for r in sorted(rows, key=lambda r: r.date_start)]
            assert cum == sorted(cum) and cum[-1] > 0
        fatigue = stub.GetFatigue(gw.GetFatigueRequest(account_id=SYNTH, since=since, until=until),
                                  metadata=md, timeout=120)
    frequency = [c for r in fatigue.results for c in r.components if c.name == "frequency" and c.available]
    assert frequency and all(c.raw_value >= 1.0 for c in frequency)
