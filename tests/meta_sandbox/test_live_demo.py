"""The live demo account: today's delivery accrues each tick, a recent day is restated every few ticks."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.meta_sandbox.live_demo import LiveDemo
from services.meta_sandbox.synthetic import SYNTHETIC_TIMEZONE, synthetic_account

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc)
TODAY = NOW.astimezone(ZoneInfo(SYNTHETIC_TIMEZONE)).date()


def test_today_accrues_and_a_recent_day_is_restated():
    account = synthetic_account(today=TODAY)
    assert not [r for r in account.rows if r.date_start == TODAY]
    before = {(r.ad_id, r.date_start): r for r in account.rows}
    demo = LiveDemo(account, tick_s=1, restate_every=3, clock=lambda: NOW)
    first = demo.tick()
    today_rows = {r.ad_id: r for r in account.rows if r.date_start == TODAY}
    assert first.accrued_ads == len(today_rows) > 0 and first.restated is None
    assert all(r.impressions > 0 and r.spend > 0 for r in today_rows.values())
    demo.tick()
    grown = {r.ad_id: r for r in account.rows if r.date_start == TODAY}
    assert all(grown[a].impressions > today_rows[a].impressions for a in today_rows)
    assert grown.keys() == today_rows.keys()  # one row per ad and day, never a second one
    assert [r.date_start for r in account.rows] == sorted(r.date_start for r in account.rows)
    third = demo.tick()
    day, ad_id = third.restated
    assert TODAY - timedelta(days=7) <= day <= TODAY - timedelta(days=2)
    restated = next(r for r in account.rows if r.ad_id == ad_id and r.date_start == day)
    old = before[(ad_id, day)]
    assert restated.actions["lead"] == (old.actions or {}).get("lead", 0) + 1
    assert restated.impressions == old.impressions  # only the attribution moved


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        LiveDemo(synthetic_account(today=TODAY), tick_s=0)
