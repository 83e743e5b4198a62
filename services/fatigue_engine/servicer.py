"""gRPC FatigueEngine servicer (fatigue_engine.proto): transport only.

``ScoreAds`` validates and converts the request (``build_series``), scores
with ``scoring.score_ads`` and converts back. All scoring rules live in
``scoring``; this module only maps protobuf <-> plain types and errors to
status codes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import date

import grpc

from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.insight_row import InsightRow
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_engine_pb2_grpc
from services.fatigue_engine.config import FatigueConfig
from services.fatigue_engine.proto_convert import (
    ProtoConversionError, config_from_proto, result_to_proto, row_from_proto,
)
from services.fatigue_engine.scoring import score_ad
from services.fatigue_engine.series_cache import KeptAd, SeriesCache
from services.fatigue_engine.windows import InvalidSeries

log = logging.getLogger(__name__)

SERVICE_NAME = fatigue_engine_pb2.DESCRIPTOR.services_by_name["FatigueEngine"].full_name


class InvalidRequest(ValueError):
    """The request cannot be scored; the message says where and why (-> INVALID_ARGUMENT)."""


def build_series(request: fatigue_engine_pb2.ScoreAdsRequest) -> tuple[str, list[tuple[str, list[InsightRow]]]]:
    """Validate a ScoreAdsRequest and convert it to (account_id, [(ad_id, rows), ...]).

    ``account_id`` is normalised (``act_`` prefix dropped); a row with an
    empty account_id or ad_id takes the request's / series'. Raises
    ``InvalidRequest`` naming ``ads[i].days[j]`` for: an unparsable value
    (date, spend, action, ranking, negative count), a row of another ad or
    account, a duplicate date, an invalid account id.
    """
    account = ""
    if request.account_id:
        try:
            account = normalise_account_id(request.account_id)
        except InvalidAccountId as exc:
            raise InvalidRequest(str(exc)) from None
    out: list[tuple[str, list[InsightRow]]] = []
    for i, series in enumerate(request.ads):
        ad_id = series.ad_id or (series.days[0].ad_id if series.days else "")
        rows: list[InsightRow] = []
        seen: dict[str, int] = {}
        for j, pb in enumerate(series.days):
            where = f"ads[{i}].days[{j}] (ad_id {ad_id!r})"
            if pb.ad_id and pb.ad_id != ad_id:
                raise InvalidRequest(f"{where}: row belongs to ad {pb.ad_id!r}; every row of a series must be of ad {ad_id!r}")
            if pb.account_id and account and pb.account_id != account and _normalise_or_raw(pb.account_id) != account:
                raise InvalidRequest(f"{where}: row belongs to account {pb.account_id!r}, request is for {account!r}")
            try:
                row = row_from_proto(pb)
            except ProtoConversionError as exc:
                raise InvalidRequest(f"{where}: {exc}") from None
            key = row.date_start.isoformat()
            if key in seen:
                raise InvalidRequest(f"{where}: duplicate date {key} (also ads[{i}].days[{seen[key]}])")
            seen[key] = j
            if not row.ad_id or not row.account_id:
                row = replace(row, ad_id=row.ad_id or ad_id, account_id=row.account_id or account)
            rows.append(row)
        out.append((ad_id, rows))
    return account, out


def _normalise_or_raw(account_id: str) -> str:
    try:
        return normalise_account_id(account_id)
    except InvalidAccountId:
        return account_id


def check_one_attribution(series: list[tuple[str, list[InsightRow]]]) -> None:
    """Refuse a request whose rows were produced with more than one attribution setting (issue 17): their
    conversions are not comparable, and the CPA component would fire on the setting change alone. Rows with no
    setting (``action_attribution_windows`` empty) count as one more setting when others have one."""
    seen: dict[tuple[str, ...], str] = {}
    for i, (ad_id, rows) in enumerate(series):
        for j, row in enumerate(rows):
            seen.setdefault(row.action_attribution_windows, f"ads[{i}].days[{j}] (ad_id {ad_id!r}, {row.date_start})")
            if len(seen) > 1:
                (a, where_a), (b, where_b) = list(seen.items())[:2]
                raise InvalidRequest(
                    f"rows mix two attribution settings: {','.join(a) or 'none'} at {where_a} and "
                    f"{','.join(b) or 'none'} at {where_b}; conversions under different settings cannot be compared "
                    "- score rows of one setting (refetch the others with it)")


class UnknownSeries(LookupError):
    """A ``series_key`` without ``ads`` that this engine does not keep (-> FAILED_PRECONDITION)."""


def _day_bounds(request: fatigue_engine_pb2.ScoreAdsRequest) -> tuple[date | None, date | None]:
    bounds = []
    for name in ("since", "until"):
        text = getattr(request, name)
        try:
            bounds.append(date.fromisoformat(text) if text else None)
            if text and len(text) != 10:
                raise ValueError
        except ValueError:
            raise InvalidRequest(f"{name} {text!r} is not a YYYY-MM-DD date") from None
    since, until = bounds
    if since and until and since > until:
        raise InvalidRequest(f"since {since} is after until {until}")
    return since, until


def score_request(request: fatigue_engine_pb2.ScoreAdsRequest,
                  cache: SeriesCache | None = None) -> fatigue_engine_pb2.ScoreAdsResponse:
    """The whole RPC as a function of the request (and the series ``cache`` keeps): request -> response.

    Raises ``InvalidRequest``, or ``UnknownSeries`` for a ``series_key`` without ``ads`` not in ``cache``.
    """
    try:
        config: FatigueConfig = config_from_proto(request.config)
    except ProtoConversionError as exc:
        raise InvalidRequest(str(exc)) from None
    since, until = _day_bounds(request)
    memoised = bool(request.series_key) and cache is not None
    if request.series_key and not request.ads:
        kept = cache.get(request.series_key) if cache is not None else None
        if kept is None:
            raise UnknownSeries(f"series_key {request.series_key!r} is not kept by this engine: send the ads with it")
        account, ads = kept
    else:
        account, series = build_series(request)
        check_one_attribution(series)  # a kept series was checked when it was sent
        ads = cache.put(request.series_key, account, series) if memoised else \
            [KeptAd.of(ad_id, rows) for ad_id, rows in series]
    config_key = request.config.SerializeToString(deterministic=True) if memoised else b""
    response = fatigue_engine_pb2.ScoreAdsResponse()
    for i, ad in enumerate(ads):
        lo, hi = ad.bounds(since, until)
        if lo == hi and (since or until):
            continue  # no day of the ad in the range
        # a kept series never changes under its key: the same slice of the same ad scores the same
        memo_key = (request.series_key, i, lo, hi, config_key) if memoised else None
        result = cache.result(memo_key) if memo_key else None
        if result is None:
            try:
                result = score_ad(ad.rows[lo:hi], config)
            except InvalidSeries as exc:
                raise InvalidRequest(f"ads[{i}] (ad_id {ad.ad_id!r}): {exc}") from None
            if memo_key:
                cache.keep_result(memo_key, result)
        response.results.append(_result_proto(result, request.insights_version, ad.ad_id, account))
    return response


def _result_proto(result, insights_version: int, ad_id: str, account: str):
    pb = result_to_proto(result, insights_version)
    if not pb.ad_id:
        pb.ad_id = ad_id
    if account:
        pb.account_id = account
    return pb


class FatigueEngineServicer(fatigue_engine_pb2_grpc.FatigueEngineServicer):
    """grpc.aio servicer: its only state is the series cache; scoring runs in a worker thread so the event
    loop keeps serving (health checks, other calls) during a large batch."""

    def __init__(self, cache: SeriesCache | None = None):
        self.cache = cache if cache is not None else SeriesCache()

    async def ScoreAds(self, request: fatigue_engine_pb2.ScoreAdsRequest,
                       context: grpc.aio.ServicerContext) -> fatigue_engine_pb2.ScoreAdsResponse:
        try:
            return await asyncio.to_thread(score_request, request, self.cache)
        except InvalidRequest as exc:
            log.info("ScoreAds rejected: %s", exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # unreachable: abort raises
        except UnknownSeries as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise  # unreachable: abort raises
