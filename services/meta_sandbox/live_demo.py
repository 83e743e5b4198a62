"""A live sandbox account (``adfatigue up --live-demo``): today's delivery accrues, recent days get restated.

What Meta does to a running account, sped up so a person watching sees it
within a minute:

- every ``tick_s`` seconds each ad that delivered yesterday delivers a little
  more today (in the account's time zone): about 1 % of yesterday's
  impressions, with yesterday's link CTR, CPM and leads per click; the first
  tick of a day creates today's rows (Meta's partial day);
- every ``restate_every`` ticks one recent day (2 to 7 days ago, in turn) of
  one ad (in turn) is restated: one more lead is attributed to it, as
  Meta does while conversions are still coming in (the 28-day window).

``LiveDemo.tick`` is one step (deterministic for a given clock; the tests
call it directly); ``run`` repeats it until cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable
from zoneinfo import ZoneInfo

from services.common.insight_row import InsightRow
from services.meta_sandbox.accounts import SandboxAccount

log = logging.getLogger(__name__)
CENT = Decimal("0.01")


@dataclasses.dataclass
class TickResult:
    today: date
    accrued_ads: int = 0
    restated: tuple[date, str] | None = None  # (day, ad id)


class LiveDemo:
    def __init__(self, account: SandboxAccount, *, tick_s: float = 5.0, restate_every: int = 6,
                 share_per_tick: float = 0.01, clock: Callable[[], datetime] | None = None):
        if tick_s <= 0 or restate_every < 1 or not 0 < share_per_tick <= 1:
            raise ValueError("tick_s must be > 0, restate_every >= 1 and share_per_tick in (0, 1]")
        self.account = account
        self.tick_s = tick_s
        self.restate_every = restate_every
        self.share = share_per_tick
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.ticks = 0

    def today(self) -> date:
        return self.clock().astimezone(ZoneInfo(self.account.timezone_name)).date()

    def tick(self) -> TickResult:
        """One step: accrue today's delivery; every ``restate_every``-th step, restate one recent day."""
        self.ticks += 1
        today = self.today()
        result = TickResult(today)
        rows = self.account.rows
        yesterday = {r.ad_id: r for r in rows if r.date_start == today - timedelta(days=1) and (r.impressions or 0) > 0}
        if not yesterday:  # the account's data ended earlier: take each ad's latest delivering day as the model
            for r in rows:
                if (r.impressions or 0) > 0 and r.date_start < today:
                    yesterday[r.ad_id] = r
        current = {r.ad_id: i for i, r in enumerate(rows) if r.date_start == today}
        created = False
        for ad_id, model in sorted(yesterday.items()):
            extra = self._increment(model)
            if ad_id in current:
                i = current[ad_id]
                rows[i] = _add(rows[i], extra)
            else:
                rows.append(_add(dataclasses.replace(model, date_start=today, date_stop=today, impressions=0, reach=0,
                                                     clicks=0, inline_link_clicks=0, spend=Decimal(0), actions=None,
                                                     reach_cum=None), extra))
                created = True
            result.accrued_ads += 1
        if created:
            self.account.sort()
        if self.ticks % self.restate_every == 0:
            result.restated = self._restate(today)
        return result

    def _increment(self, model: InsightRow) -> dict:
        impressions = max(1, round((model.impressions or 0) * self.share))
        ctr = (model.inline_link_clicks or 0) / model.impressions if model.impressions else 0.0
        link_clicks = round(impressions * ctr + (self.ticks % 3) / 3)  # keeps CTR on average, whole clicks
        cpm = (model.spend or Decimal(0)) * 1000 / model.impressions if model.impressions else Decimal(0)
        spend = (Decimal(impressions) * cpm / 1000).quantize(CENT, ROUND_HALF_UP)
        leads_per_click = Decimal((model.actions or {}).get("lead", 0)) / model.inline_link_clicks \
            if model.inline_link_clicks else Decimal(0)
        leads = int((Decimal(link_clicks) * leads_per_click).to_integral_value(ROUND_HALF_UP))
        return {"impressions": impressions, "clicks": link_clicks + link_clicks // 4, "inline_link_clicks": link_clicks,
                "reach": max(1, round(impressions * 0.95)), "spend": spend, "lead": leads, "link_click": link_clicks}

    def _restate(self, today: date) -> tuple[date, str] | None:
        n = self.ticks // self.restate_every
        day = today - timedelta(days=2 + n % 6)
        ads = sorted({r.ad_id for r in self.account.rows if r.date_start == day})
        if not ads:
            return None
        ad_id = ads[n % len(ads)]
        self.account.restate(day, ad_id, {"lead": Decimal(1)})
        return day, ad_id

    async def run(self) -> None:
        """Tick every ``tick_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.tick_s)
            result = self.tick()
            if result.restated:
                log.info("live demo: act_%s restated %s of ad %s", self.account.account_id, *result.restated)


def _add(row: InsightRow, extra: dict) -> InsightRow:
    actions = dict(row.actions or {})
    for key in ("lead", "link_click"):
        if extra[key]:
            actions[key] = actions.get(key, Decimal(0)) + extra[key]
    return dataclasses.replace(
        row, impressions=(row.impressions or 0) + extra["impressions"], reach=(row.reach or 0) + extra["reach"],
        clicks=(row.clicks or 0) + extra["clicks"],
        inline_link_clicks=(row.inline_link_clicks or 0) + extra["inline_link_clicks"],
        spend=(row.spend or Decimal(0)) + extra["spend"], actions=actions or None)
