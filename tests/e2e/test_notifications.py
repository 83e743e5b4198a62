"""The whole system notifies: ads of the sample account entering warning / critical reach the webhook and an
SMTP server (aiosmtpd) on loopback, one batch per account, one message per ad, with reasons and a page link."""

from __future__ import annotations

import os
import re
import time

import grpc
import pytest

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc, fatigue_pb2
from tests.notify_servers import smtp_server, webhook_server
from tests.shared_data import require_real_csv

pytestmark = pytest.mark.e2e

#: the batch window: a batch is sent this long after its account's last event. The first fetch's three 90-day
#: ranges are committed and rescored a second or two apart, well within it (test setting; the default is 30 s)
BATCH_S = 8


def test_ads_entering_warning_or_critical_are_notified_once_per_ad_in_one_batch(tmp_path):
    with smtp_server() as (smtp_port, inbox), webhook_server() as (url, hook):
        config = SystemConfig(
            data_dir=tmp_path, csv_accounts=[(require_real_csv(), "1001")], synthetic=False, gateway_port=0,
            scheduler_interval_s=3600, mongodb_uri=os.environ.get("MONGODB_URI") or None,
            extra_env={"MONGODB_DB": f"notify_{os.getpid()}", "NOTIFY_WEBHOOK_URL": url,
                       "NOTIFY_SMTP_HOST": "127.0.0.1", "NOTIFY_SMTP_PORT": str(smtp_port),
                       "NOTIFY_SMTP_FROM": "adfatigue@example.test", "NOTIFY_SMTP_TO": "ops@example.test",
                       "NOTIFY_PAGE_URL": "http://127.0.0.1:8080", "NOTIFY_BATCH_SECONDS": str(BATCH_S)})
        with LocalSystem(config) as system:
            md = bearer(mint_token(system.jwt_secret, "notify-test", ["*"]))
            with grpc.insecure_channel(system.processes["cache_gateway"].address) as channel:
                reply = cache_gateway_pb2_grpc.CacheGatewayStub(channel).GetFatigue(
                    gw.GetFatigueRequest(account_id="act_1001", since="2025-10-29", until="2026-04-29"),
                    metadata=md, timeout=300)
            alerting = {r.ad_name for r in reply.results if r.level in (fatigue_pb2.WARNING, fatigue_pb2.CRITICAL)}
            assert alerting
            assert hook.arrived.wait(120) and inbox.arrived.wait(120), system.processes["cache_gateway"].tail()
            time.sleep(BATCH_S + 4)  # a second batch would have come by now
        assert len(hook.received) == 1 and len(inbox.messages) == 1
        text = hook.received[0]["text"]
        assert text.startswith(f"adfatigue: act_1001: {len(alerting)} ad(s) changed fatigue level")
        # the first fetch commits three 90-day ranges; an ad rescored between two of them may pass through
        # another level first ("no score" or "caution" -> warning), so the level before varies by timing
        messages = re.findall(r"^(.+?) / (.+?) / (.+?): ([^→\n]+?) → (warning|critical) \(score [\d.]+\)$", text, re.M)
        assert sorted({m[2] for m in messages}) == sorted(alerting)  # every alerting ad named
        assert re.search(r"^Campaign 01 LEADS / Ad set 01 / Ad 001 Video 003: [^→\n]+ → critical", text, re.M)
        assert re.search(r"because link CTR [\d.]+ % → [\d.]+ % \(-\d+ %\); CPA [\d.]+ → [\d.]+ MYR \(× [\d.]+\)", text)
        assert "http://127.0.0.1:8080/ad-fatigue?account=act_1001&since=" in text
        mail = inbox.messages[0]
        assert mail["Subject"] == f"adfatigue: act_1001: {len(alerting)} ads changed fatigue level"
        assert "Ad 001 Video 003" in mail.get_content()
