"""GetFatigue's scoring without shipping every row on every call (issue 14).

- Results are memoised per (account, range version, range, config): equal
  range versions mean equal rows (``Snapshot.version``), so a memoised result
  is exactly what the engine would answer again. Bounded in bytes.
- For an account whose replica is resident, the engine is handed the
  account's whole daily series once per account version, under the
  ``series_key`` ``"<account>@<version>"``; any range of it is then scored by
  sending the key and ``since``/``until`` only. Concurrent first calls share
  one shipment. An engine that does not keep the key (restarted, another
  pod) answers FAILED_PRECONDITION and the series is shipped again.
- Otherwise (an answer read from L2) the range's rows are sent, as before.

The engine receives the same rows, config and ``insights_version`` either
way, so the results equal those of shipping the range's rows (FATIGUE_SPEC.md;
the worked example and the real-data tests stay exact).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import grpc
from cachetools import LRUCache

from services.cache_gateway.account_replica import frame
from services.cache_gateway.insights_service import ReadResult
from services.cache_gateway.replica_cache import ReplicaCache
from services.common.dates import DateRange
from services.common.pb.adfatigue.v1 import cache_gateway_pb2, fatigue_engine_pb2, fatigue_pb2
from services.common.row_proto import row_to_proto

SCORE_ADS = "/adfatigue.v1.FatigueEngine/ScoreAds"
_ADS = fatigue_engine_pb2.ScoreAdsRequest.DESCRIPTOR.fields_by_name["ads"].number
_AD_ID = fatigue_pb2.AdSeries.DESCRIPTOR.fields_by_name["ad_id"].number
_DAYS = fatigue_pb2.AdSeries.DESCRIPTOR.fields_by_name["days"].number
_RESULTS = cache_gateway_pb2.GetFatigueResponse.DESCRIPTOR.fields_by_name["results"].number


def _series_bytes(by_ad: dict[str, list[bytes]]) -> bytes:
    """``ScoreAdsRequest.ads`` on the wire, ads ordered by ad_id, from serialized rows."""
    return b"".join(
        frame(_ADS, frame(_AD_ID, ad_id.encode()) + b"".join(frame(_DAYS, r) for r in rows))
        for ad_id, rows in sorted(by_ad.items()))


class FatigueScorer:
    """``channel``: to the fatigue engine; ``metadata()``: each call's metadata (the caller's service token).
    ``score`` raises ``grpc.aio.AioRpcError`` when the engine fails."""

    def __init__(self, channel: grpc.aio.Channel, replicas: ReplicaCache | None, max_bytes: int = 8 * 1024 * 1024,
                 timeout_s: float = 60.0, metadata=lambda: None):
        self._call = channel.unary_unary(SCORE_ADS, request_serializer=None,
                                         response_deserializer=fatigue_engine_pb2.ScoreAdsResponse.FromString)
        self.replicas = replicas
        self.timeout_s = timeout_s
        self.metadata = metadata  # () -> the call's metadata (the gateway's service token)
        self.max_bytes = max_bytes
        self.memo: LRUCache = LRUCache(maxsize=max_bytes, getsizeof=lambda r: len(r) + 256)
        self._shipped: LRUCache = LRUCache(maxsize=256)   # series keys the engine was sent
        self._shipping: dict[str, asyncio.Future] = {}
        self.memo_hits = self.shipments = 0

    async def score(self, account: str, days: DateRange, result: ReadResult,
                    config: fatigue_pb2.FatigueConfig, config_bytes: bytes) -> bytes:
        """The range's fatigue results as ``GetFatigueResponse.results`` on the wire (each result framed as
        field 3, serialized deterministically; empty: no ad has a row in the range)."""
        version = result.snapshot.version
        memo_key = (account, version, days, config_bytes)
        results = self.memo.get(memo_key)
        if results is not None:
            self.memo_hits += 1
            return results
        head = fatigue_engine_pb2.ScoreAdsRequest(account_id=account, config=config, insights_version=version)
        replica = self.replicas.peek(account) if self.replicas is not None and result.entries is not None else None
        if replica is not None and replica.version == result.account_version:
            keyed = fatigue_engine_pb2.ScoreAdsRequest()
            keyed.CopyFrom(head)
            keyed.series_key = f"{account}@{replica.version}"
            keyed.since, keyed.until = days.since.isoformat(), days.until.isoformat()
            scored = await self._by_key(keyed, replica, result)
        elif result.entries is not None:
            scored = await self._call(head.SerializeToString() + self._range_series(result), timeout=self.timeout_s, metadata=self.metadata())
        else:
            by_ad_rows: dict[str, list] = defaultdict(list)
            for row in result.snapshot.rows:
                by_ad_rows[row.ad_id].append(row_to_proto(row))
            head.ads.extend(fatigue_pb2.AdSeries(ad_id=a, days=rows) for a, rows in sorted(by_ad_rows.items()))
            scored = await self._call(head.SerializeToString(), timeout=self.timeout_s, metadata=self.metadata())
        results = b"".join(frame(_RESULTS, r.SerializeToString(deterministic=True)) for r in scored.results)
        if len(results) + 256 <= self.max_bytes:
            self.memo[memo_key] = results
        return results

    @staticmethod
    def _range_series(result: ReadResult) -> bytes:
        by_ad: dict[str, list[bytes]] = defaultdict(list)
        for entry in result.entries:
            by_ad[entry.row.ad_id].append(entry.serialized())
        return _series_bytes(by_ad)

    async def _by_key(self, head: fatigue_engine_pb2.ScoreAdsRequest, replica,
                      result: ReadResult) -> fatigue_engine_pb2.ScoreAdsResponse:
        key = head.series_key
        shipping = self._shipping.get(key)
        if shipping is not None:
            await asyncio.shield(shipping)  # another call is handing the series over; then use the key
        if key in self._shipped:
            try:
                return await self._call(head.SerializeToString(), timeout=self.timeout_s, metadata=self.metadata())
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                self._shipped.pop(key, None)   # the engine no longer keeps it: ship it again
        if replica.version != result.account_version:  # the replica moved on meanwhile: send the range's rows
            plain = fatigue_engine_pb2.ScoreAdsRequest()
            plain.CopyFrom(head)
            plain.ClearField("series_key"), plain.ClearField("since"), plain.ClearField("until")
            return await self._call(plain.SerializeToString() + self._range_series(result), timeout=self.timeout_s, metadata=self.metadata())
        series = _series_bytes(replica.series_by_ad())
        future = self._shipping[key] = asyncio.get_running_loop().create_future()
        try:
            scored = await self._call(head.SerializeToString() + series, timeout=self.timeout_s, metadata=self.metadata())
            self._shipped[key] = True
            self.shipments += 1
            return scored
        finally:
            self._shipping.pop(key, None)
            future.set_result(None)

    @property
    def bytes_used(self) -> int:
        return int(self.memo.currsize)
