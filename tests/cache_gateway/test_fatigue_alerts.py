"""Fatigue-level notifications reach a real SMTP server (aiosmtpd) and a Slack-compatible webhook on loopback."""

from __future__ import annotations

import asyncio

import pytest

from services.cache_gateway.fatigue_alerts import FatigueAlerter, alerter_from_env, level_changes
from services.common.notification_sinks import EmailSink, Notifier, WebhookSink
from services.common.pb.adfatigue.v1 import fatigue_pb2
from tests.notify_servers import smtp_server, webhook_server


def result(ad_id: str, level: int, score: float | None = None) -> fatigue_pb2.FatigueResult:
    r = fatigue_pb2.FatigueResult(account_id="1001", ad_id=ad_id, ad_name=f"Ad {ad_id}", campaign_name="Campaign 01",
                                  adset_name="Campaign 01 / Ad set 02", level=level)
    if score is not None:
        r.score = score
        r.components.add(name="ctr_decay", available=True, raw_value=0.5, score=100, weight=0.3,
                         details={"ctr_baseline": 0.0371, "ctr_recent": 0.0186, "z": 8.0, "z_gate_passed": 1.0})
        r.components.add(name="cpa_inflation", available=True, raw_value=1.1, score=80, weight=0.15,
                         details={"cpa_baseline": 4.1, "cpa_recent": 8.61, "cpa_ratio": 2.1})
        r.components.add(name="cpm_inflation", available=True, raw_value=0.1, score=5, weight=0.1,
                         details={"cpm_baseline": 12.6, "cpm_recent": 13.9})
    return r


def test_only_crossings_into_or_out_of_warning_and_critical_are_events():
    before = {"a": "caution", "b": "warning", "c": "critical", "d": "caution", "e": "warning"}
    after = [(result("a", fatigue_pb2.WARNING, 55), "", ""), (result("b", fatigue_pb2.CRITICAL, 80), "", ""),
             (result("c", fatigue_pb2.WARNING, 60), "", ""), (result("d", fatigue_pb2.HEALTHY, 10), "", ""),
             (result("e", fatigue_pb2.WARNING, 61), "", ""), (result("new", fatigue_pb2.CRITICAL, 90), "", "")]
    changes = {c.after.ad_id: c.before for c in level_changes(before, after)}
    assert changes == {"a": "caution", "b": "warning", "c": "critical", "new": ""}
    back = level_changes({"a": "warning"}, [(result("a", fatigue_pb2.CAUTION, 40), "", "")])
    assert [(c.before, c.after.level) for c in back] == [("warning", fatigue_pb2.CAUTION)]


async def test_one_batch_per_account_one_message_per_ad_to_webhook_and_email():
    with smtp_server() as (smtp_port, inbox), webhook_server() as (url, hook):
        notifier = Notifier([WebhookSink(url), EmailSink("127.0.0.1", smtp_port, "adfatigue@example.test",
                                                         ["ops@example.test", "owner@example.test"])])
        alerter = FatigueAlerter(notifier, page_url="http://127.0.0.1:8080", batch_s=0.3)
        # two rescoring passes of one cycle: ad 1 goes caution -> warning -> critical, ad 2 warning -> caution,
        # ad 3 caution -> warning and back within the batch (no net change: no message)
        alerter.add("1001", level_changes({"1": "caution", "2": "warning", "3": "caution"},
                                          [(result("1", fatigue_pb2.WARNING, 60), "2026-01-01", "2026-03-01"),
                                           (result("2", fatigue_pb2.CAUTION, 40), "2026-01-01", "2026-03-01"),
                                           (result("3", fatigue_pb2.WARNING, 51), "2026-01-01", "2026-03-01")]),
                    currency="MYR")
        alerter.add("1001", level_changes({"1": "warning", "3": "warning"},
                                          [(result("1", fatigue_pb2.CRITICAL, 81.5), "2026-01-01", "2026-03-02"),
                                           (result("3", fatigue_pb2.CAUTION, 45), "2026-01-01", "2026-03-02")]))
        alerter.add("2002", level_changes({}, [(result("9", fatigue_pb2.CRITICAL, 90), "", "")]))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(inbox.arrived.wait, 10)
        await alerter.aclose()
        assert alerter.sent_batches == 2 and notifier.failures == 0
        texts = {body["text"].splitlines()[0]: body["text"] for body in hook.received}
        assert len(hook.received) == 2  # one per account
        batch = texts["adfatigue: act_1001: 2 ad(s) changed fatigue level"]
        assert "Campaign 01 / Ad set 02 / Ad 1: caution → critical (score 81.5)" in batch  # its latest change
        assert "Campaign 01 / Ad set 02 / Ad 2: warning → caution (score 40.0)" in batch  # and back
        assert "Ad 3" not in batch
        assert "because link CTR 3.71 % → 1.86 % (-50 %); CPA 4.10 → 8.61 MYR (× 2.1)" in batch
        assert "http://127.0.0.1:8080/ad-fatigue?account=act_1001&since=2026-01-01&until=2026-03-02#ad-1" in batch
        assert "act_2002" in "".join(texts) and "no score → critical" in texts[
            "adfatigue: act_2002: 1 ad(s) changed fatigue level"]
        for _ in range(50):
            if len(inbox.messages) == 2:
                break
            await asyncio.sleep(0.1)
        mails = {m["Subject"]: m for m in inbox.messages}
        assert set(mails) == {"adfatigue: act_1001: 2 ads changed fatigue level",
                              "adfatigue: act_2002: Ad 9 is now critical"}
        body = mails["adfatigue: act_1001: 2 ads changed fatigue level"].get_content().replace("\r\n", "\n")
        assert body.strip() == batch.strip()
        assert inbox.envelopes[0] == ("adfatigue@example.test", ["ops@example.test", "owner@example.test"])


async def test_an_unreachable_smtp_server_is_counted_and_never_raises():
    port = 1  # nothing listens there
    notifier = Notifier([EmailSink("127.0.0.1", port, "a@example.test", ["b@example.test"], timeout_s=2)])
    alerter = FatigueAlerter(notifier, batch_s=0)
    alerter.add("1001", level_changes({}, [(result("1", fatigue_pb2.CRITICAL, 90), "", "")]))
    await alerter.aclose()
    assert notifier.failures == 1 and notifier.published == 1


def test_settings_are_checked_with_a_message_naming_the_variable():
    with pytest.raises(ValueError, match="NOTIFY_SMTP_FROM and NOTIFY_SMTP_TO"):
        alerter_from_env({"NOTIFY_SMTP_HOST": "127.0.0.1"})
    with pytest.raises(ValueError, match="NOTIFY_SMTP_PORT='x' is invalid"):
        alerter_from_env({"NOTIFY_SMTP_HOST": "h", "NOTIFY_SMTP_PORT": "x", "NOTIFY_SMTP_FROM": "a@b",
                          "NOTIFY_SMTP_TO": "c@d"})
    with pytest.raises(ValueError, match="NOTIFY_BATCH_SECONDS"):
        alerter_from_env({"NOTIFY_BATCH_SECONDS": "soon"})
    with pytest.raises(ValueError, match="NOTIFY_WEBHOOK_URL must be an http"):
        alerter_from_env({"NOTIFY_WEBHOOK_URL": "ftp://example.test/hook"})
    alerter = alerter_from_env({"NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    assert [type(s).__name__ for s in alerter.notifier.sinks] == ["LogSink", "WebhookSink"]
