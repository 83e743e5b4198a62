"""A kept series scores any range exactly as shipping that range's rows does, memoised results included.

``score_request`` in-process (pure function of the request and the cache): the real sample account's rows
(data/), shuffled within each ad as a caller may send them, kept under a series key; random ranges are scored by
key, repeatedly and in random order (so memoised per-ad results are reused), and each answer must equal, byte for
byte, the answer to the same range shipped as rows with no cache.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from services.common.ads_manager_csv import load_csv
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_pb2
from services.fatigue_engine.proto_convert import row_to_proto
from services.fatigue_engine.series_cache import SeriesCache
from services.fatigue_engine.servicer import InvalidRequest, score_request

CSV = Path(__file__).resolve().parents[2] / "data" / "meta_ads_daily_account_a.csv"


@pytest.fixture(scope="module")
def ads() -> list[fatigue_pb2.AdSeries]:
    if not CSV.exists():
        pytest.skip(f"sample account {CSV} not found")
    by_ad: dict[str, list] = defaultdict(list)
    for row in load_csv(CSV, "act_1001"):
        by_ad[row.ad_id].append(row_to_proto(row))
    shuffler = random.Random(3)
    out = []
    for ad_id, rows in sorted(by_ad.items()):
        shuffler.shuffle(rows)
        out.append(fatigue_pb2.AdSeries(ad_id=ad_id, days=rows))
    return out


def _shipped(ads, since: str, until: str, config=None) -> bytes:
    """The answer for the range's rows sent as ads (no cache): the reference."""
    in_range = [fatigue_pb2.AdSeries(ad_id=a.ad_id, days=[d for d in a.days if since <= d.date_start <= until])
                for a in ads]
    request = fatigue_engine_pb2.ScoreAdsRequest(account_id="act_1001", ads=[a for a in in_range if a.days],
                                                 insights_version=7, config=config)
    return score_request(request).SerializeToString(deterministic=True)


def test_kept_series_equals_shipped_rows_for_random_ranges(ads) -> None:
    cache = SeriesCache()
    first = fatigue_engine_pb2.ScoreAdsRequest(account_id="act_1001", ads=ads, series_key="act_1001@7",
                                               insights_version=7)
    score_request(first, cache)  # kept
    days = sorted({d.date_start for a in ads for d in a.days})
    rng = random.Random(14)
    retargeting = fatigue_pb2.FatigueConfig(audience_type=fatigue_pb2.RETARGETING)
    ranges = []
    for _ in range(30):
        until = rng.choice(days[20:])
        for span in (7, 28, None):
            since = days[0] if span is None else \
                max(days[0], (date.fromisoformat(until) - timedelta(days=span - 1)).isoformat())
            ranges.append((since, until, retargeting if rng.random() < 0.2 else None))
    ranges += ranges[:20]  # asked again: answered from memoised results
    rng.shuffle(ranges)
    for since, until, config in ranges:
        keyed = fatigue_engine_pb2.ScoreAdsRequest(series_key="act_1001@7", since=since, until=until,
                                                   insights_version=7, config=config)
        got = score_request(keyed, cache).SerializeToString(deterministic=True)
        assert got == _shipped(ads, since, until, config), (since, until, config)
    assert cache.results.hits > 0, "no per-ad result was reused: ads that ended before a range's end re-scored"
    assert cache.results.misses > 0


def test_result_memo_is_bounded_and_keyed_by_config(ads) -> None:
    cache = SeriesCache(max_results=10)
    score_request(fatigue_engine_pb2.ScoreAdsRequest(account_id="act_1001", ads=ads, series_key="k@1"), cache)
    lifetime = fatigue_engine_pb2.ScoreAdsRequest(series_key="k@1")
    plain = score_request(lifetime, cache)
    assert len(cache.results) == 10
    retargeting = fatigue_engine_pb2.ScoreAdsRequest(series_key="k@1", config=fatigue_pb2.FatigueConfig(
        audience_type=fatigue_pb2.RETARGETING, conversion_action_type="purchase"))
    other = score_request(retargeting, cache)
    assert other.SerializeToString() != plain.SerializeToString()  # another config is not answered from the memo
    assert len(cache.results) == 10


def test_unkept_key_and_bad_range_are_refused(ads) -> None:
    from services.fatigue_engine.servicer import UnknownSeries

    with pytest.raises(UnknownSeries, match="send the ads"):
        score_request(fatigue_engine_pb2.ScoreAdsRequest(series_key="nobody@1"), SeriesCache())
    with pytest.raises(InvalidRequest, match="after until"):
        score_request(fatigue_engine_pb2.ScoreAdsRequest(series_key="k@1", since="2026-02-02", until="2026-02-01"),
                      SeriesCache())


def test_two_series_of_one_ad_id_keep_their_own_results(ads) -> None:
    """A request may hold two series with the same ad_id: the memo keys them by place, not by ad_id."""
    one = max(ads, key=lambda a: len(a.days))
    other = next(a for a in ads if a is not one and len(a.days) > 10)
    # a second series under other's ad_id, other days of as many rows: the same slice bounds, other results
    first_days = sorted(one.days, key=lambda d: d.date_start)[:len(other.days)]
    twin = fatigue_pb2.AdSeries(ad_id=other.ad_id, days=first_days)
    for d in twin.days:
        d.ad_id = other.ad_id
    sent = [other, twin]
    cache = SeriesCache()
    score_request(fatigue_engine_pb2.ScoreAdsRequest(account_id="act_1001", ads=sent, series_key="t@1"), cache)
    keyed = score_request(fatigue_engine_pb2.ScoreAdsRequest(series_key="t@1"), cache)
    shipped = score_request(fatigue_engine_pb2.ScoreAdsRequest(account_id="act_1001", ads=sent))
    assert keyed.SerializeToString(deterministic=True) == shipped.SerializeToString(deterministic=True)
    assert keyed.results[0].SerializeToString() != keyed.results[1].SerializeToString()
