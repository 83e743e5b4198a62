"""A seeded synthetic ad account whose creatives wear out, so the sandbox runs with no files.

Model (deterministic for a given ``seed`` and ``today``; every draw comes from
one ``random.Random(seed)`` in a fixed order):

- Account ``act_900000000001`` ("Sandbox synthetic fatigue account"), currency
  USD, time zone ``America/Los_Angeles``. Rows cover ``days`` calendar days
  ending **yesterday in the account's time zone**, so recent, still-provisional
  days exist whenever the sandbox starts (META_GRAPH_API.md §4).
- ``n_ads`` ads (default 6) spread over 2 campaigns and 4 ad sets. Ad *i*
  launches ``launch_i`` days into the window (ad 0 on day 0; others up to a
  third of the window later). Per ad the generator draws: audience size ``A``
  (people, 20k..120k), base daily impressions ``I0`` (1.5k..12k), initial link
  CTR ``c0`` (1.2 %..3.5 %), initial CPM ``m0`` (8..18 USD), conversion rate
  ``v`` (4 %..12 % of link clicks).
- Exposure before day *t*: ``f_t = E_t / A`` where ``E_t`` is the ad's
  cumulative impressions (average impressions per person so far).
- Day *t*: impressions ``I_t = I0 · w_t · (1 ± 10 %)`` (``w_t`` = 0.85 on
  weekends); daily frequency ``1.05 + 0.08 · f_t`` so daily reach
  ``= I_t / frequency``; link CTR ``c_t = c0 · (0.35 + 0.65 · e^(−0.45 · f_t))``
  (wear-out: CTR decays with exposure towards 35 % of its start);
  CPM ``m_t = m0 · (1 + 0.12 · f_t)`` (cost rises as the audience saturates);
  link clicks ``≈ I_t · c_t · (1 ± 15 %)``; all clicks = link clicks
  · (1.2..1.4); spend ``= I_t · m_t / 1000`` rounded to cents; leads
  ``≈ link clicks · v``.
- ``actions`` = ``{"link_click": link clicks, "lead": leads}`` with zero
  entries left out, and no ``actions`` key at all when both are zero (as Meta
  leaves keys out, META_GRAPH_API.md §1).
- Rankings follow CTR relative to ``c0``: > 0.80 ``ABOVE_AVERAGE``, > 0.60
  ``AVERAGE``, > 0.50 ``BELOW_AVERAGE_35``, > 0.42 ``BELOW_AVERAGE_20``, else
  ``BELOW_AVERAGE_10``; ``UNKNOWN`` below 500 impressions (too little data).
- Range reach (``time_ranges``) uses each ad's ``A`` as the audience of the
  saturation model (``services.meta_sandbox.reach_model``).
- Gaps (DATA_PITFALLS.md 6): the last ad (when ``n_ads`` ≥ 3) does not deliver
  on Sundays, and the second-to-last stops two weeks before the end.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from services.common.account_ids import stable_numeric_id
from services.common.insight_row import InsightRow
from services.meta_sandbox.accounts import SandboxAccount

SYNTHETIC_ACCOUNT_ID = "900000000001"
SYNTHETIC_TIMEZONE = "America/Los_Angeles"
SYNTHETIC_CURRENCY = "USD"
DEFAULT_SEED = 20251029
CENT = Decimal("0.01")


def _ranking(ctr_ratio: float, impressions: int) -> str:
    if impressions < 500:
        return "UNKNOWN"
    if ctr_ratio > 0.80:
        return "ABOVE_AVERAGE"
    if ctr_ratio > 0.60:
        return "AVERAGE"
    if ctr_ratio > 0.50:
        return "BELOW_AVERAGE_35"
    if ctr_ratio > 0.42:
        return "BELOW_AVERAGE_20"
    return "BELOW_AVERAGE_10"


def synthetic_rows(
    account_id: str,
    first_day: date,
    last_day: date,
    *,
    n_ads: int = 6,
    seed: int = DEFAULT_SEED,
    audiences: dict[str, float] | None = None,
) -> list[InsightRow]:
    """Daily rows for ``n_ads`` ads over ``first_day..last_day`` (inclusive); see the module model.

    ``audiences``, when given, receives each ad's drawn audience size ``A`` (people) by ad id.
    """
    rng = random.Random(seed)
    n_days = (last_day - first_day).days + 1
    rows: list[InsightRow] = []
    for i in range(n_ads):
        campaign = f"Synthetic Campaign {i % 2 + 1:02d}"
        adset = f"{campaign} / Ad set {i % 4 + 1:02d}"
        ad = f"Synthetic Ad {i + 1:03d} {'Video' if i % 2 else 'Image'}"
        audience = rng.uniform(20_000, 120_000)
        base_impr = rng.uniform(1_500, 12_000)
        ctr0 = rng.uniform(0.012, 0.035)
        cpm0 = rng.uniform(8.0, 18.0)
        cvr = rng.uniform(0.04, 0.12)
        launch = 0 if i == 0 else rng.randrange(0, max(1, n_days // 3))
        stop = n_days - 14 if (n_ads >= 3 and i == n_ads - 2) else n_days
        skip_sundays = n_ads >= 3 and i == n_ads - 1
        ad_id = stable_numeric_id(account_id, campaign, adset, ad)
        adset_id = stable_numeric_id(account_id, campaign, adset)
        campaign_id = stable_numeric_id(account_id, campaign)
        if audiences is not None:
            audiences[ad_id] = audience
        exposure = 0.0
        for t in range(launch, stop):
            day = first_day + timedelta(days=t)
            weekend = day.weekday() >= 5
            noise_i, noise_c, noise_all, noise_v = rng.random(), rng.random(), rng.random(), rng.random()
            if skip_sundays and day.weekday() == 6:
                continue
            f = exposure / audience
            impressions = max(1, round(base_impr * (0.85 if weekend else 1.0) * (0.9 + 0.2 * noise_i)))
            reach = max(1, min(impressions, round(impressions / (1.05 + 0.08 * f))))
            ctr = ctr0 * (0.35 + 0.65 * math.exp(-0.45 * f))
            link_clicks = max(0, round(impressions * ctr * (0.85 + 0.3 * noise_c)))
            clicks = link_clicks + round(link_clicks * (0.2 + 0.2 * noise_all))
            cpm = cpm0 * (1 + 0.12 * f)
            spend = (Decimal(impressions) * Decimal(repr(round(cpm, 6))) / 1000).quantize(CENT, ROUND_HALF_UP)
            leads = round(link_clicks * cvr * (0.7 + 0.6 * noise_v))
            actions = {k: Decimal(v) for k, v in (("link_click", link_clicks), ("lead", leads)) if v}
            ranking = _ranking(ctr / ctr0, impressions)
            rows.append(
                InsightRow(
                    account_id=account_id,
                    ad_id=ad_id,
                    ad_name=ad,
                    adset_id=adset_id,
                    adset_name=adset,
                    campaign_id=campaign_id,
                    campaign_name=campaign,
                    date_start=day,
                    date_stop=day,
                    impressions=impressions,
                    reach=reach,
                    clicks=clicks,
                    inline_link_clicks=link_clicks,
                    spend=spend,
                    actions=actions or None,
                    quality_ranking=ranking,
                    engagement_rate_ranking=ranking,
                    conversion_rate_ranking="UNKNOWN" if leads < 5 else ranking,
                )
            )
            exposure += impressions
    return rows


def synthetic_account(
    account_id: str = SYNTHETIC_ACCOUNT_ID,
    *,
    today: date | None = None,
    days: int = 90,
    n_ads: int = 6,
    seed: int = DEFAULT_SEED,
    timezone_name: str = SYNTHETIC_TIMEZONE,
    currency: str = SYNTHETIC_CURRENCY,
    name: str = "Sandbox synthetic fatigue account",
) -> SandboxAccount:
    """The synthetic account: ``days`` days ending the day before ``today``.

    ``today`` defaults to the current date in ``timezone_name``. Raises
    ValueError when ``days`` < 1 or ``n_ads`` < 1.
    """
    if days < 1 or n_ads < 1:
        raise ValueError("days and n_ads must be >= 1")
    if today is None:
        today = datetime.now(timezone.utc).astimezone(ZoneInfo(timezone_name)).date()
    last = today - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    account = SandboxAccount(account_id=account_id, name=name, currency=currency, timezone_name=timezone_name)
    account.rows = synthetic_rows(account.account_id, first, last, n_ads=n_ads, seed=seed,
                                  audiences=account.audiences)
    account.sort()
    return account
