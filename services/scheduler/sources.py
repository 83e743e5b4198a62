"""The production ports of ``cycle.CycleRunner``: L2 freshness and demand from MongoDB, Refresh over gRPC.

- ``MongoFreshnessSource``: the ``accounts`` collection (time zones) and the
  ``freshness`` documents of the restatement window plus two days (one
  query for every account), and rows per day from ``insights`` over the
  last 7 days (one aggregation) for call estimates.
- ``MongoDemandSource``: ``demand`` through ``demand_tracker.load_demand``.
- ``GatewayRefresher``: ``CacheGateway.Refresh`` with the service's bearer
  token and ``x-fencing-token`` metadata.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Mapping

import grpc

from services.cache_gateway.demand_fencing import FENCING_METADATA_KEY
from services.cache_gateway.demand_tracker import AccountDemand, load_demand
from services.cache_gateway.l2_store import InsightsStore
from services.common.dates import zone
from services.common.auth import ServiceToken
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc as gw_grpc
from services.scheduler.cycle import RefreshFailed, RefreshOutcome
from services.scheduler.planning import AccountFreshness, WorkItem
from services.scheduler.settings import SchedulerSettings

ROWS_SAMPLE_DAYS = 7

log = logging.getLogger(__name__)


class MongoFreshnessSource:
    def __init__(self, store: InsightsStore, settings: SchedulerSettings):
        self.store = store
        self.settings = settings

    async def load(self, now: datetime) -> list[AccountFreshness]:
        """Every account L2 knows, with ``fetched_at`` for the days of its window (see module docstring)."""
        accounts = await self.store.list_accounts()
        if not accounts:
            return []
        earliest = (now.date() - timedelta(days=self.settings.restatement_days + 3)).isoformat()
        fetched: dict[str, dict[date, datetime]] = defaultdict(dict)
        async for doc in self.store.freshness.find({"date": {"$gte": earliest}},
                                                   {"account_id": 1, "date": 1, "fetched_at": 1}):
            if doc.get("fetched_at") is not None:
                fetched[doc["account_id"]][date.fromisoformat(doc["date"])] = doc["fetched_at"]
        rows = await self._rows_per_day(now)
        out = []
        for account in accounts:
            tz = zone(account.timezone)
            today = now.astimezone(tz).date()
            first = today - timedelta(days=self.settings.restatement_days + 1)
            days = {d: at for d, at in fetched.get(account.account_id, {}).items() if first <= d <= today}
            out.append(AccountFreshness(account.account_id, account.timezone, days,
                                        rows.get(account.account_id, 1.0)))
        return out

    async def _rows_per_day(self, now: datetime) -> dict[str, float]:
        """Average rows per stored day over the last ``ROWS_SAMPLE_DAYS`` days, per account."""
        since = (now.date() - timedelta(days=ROWS_SAMPLE_DAYS + 1)).isoformat()
        pipeline = [
            {"$match": {"date": {"$gte": since}, "deleted": {"$ne": True}}},
            {"$group": {"_id": {"a": "$account_id", "d": "$date"}, "n": {"$sum": 1}}},
            {"$group": {"_id": "$_id.a", "rows": {"$sum": "$n"}, "days": {"$sum": 1}}},
        ]
        out = {}
        async for doc in await self.store.insights.aggregate(pipeline):
            if doc.get("days"):
                out[doc["_id"]] = max(1.0, doc["rows"] / doc["days"])
        return out


class MongoDemandSource:
    def __init__(self, collection, heartbeat_ttl_s: float):
        self.collection = collection
        self.heartbeat_ttl_s = heartbeat_ttl_s

    async def load(self, now: datetime) -> Mapping[str, AccountDemand]:
        return await load_demand(self.collection, now, self.heartbeat_ttl_s)


class GatewayRefresher:
    """Hands one work item to ``CacheGateway.Refresh`` (the gateway stays the only writer).

    A *prefetch* item (some day not due yet, for a live page) is sent with
    ``force`` - the gateway would otherwise skip days not due - which needs the
    operator role in the scheduler's token. If the gateway refuses that
    (PERMISSION_DENIED), prefetching is switched off with a warning and the item
    is sent again without ``force``: due days are still refreshed.
    """

    def __init__(self, stub: gw_grpc.CacheGatewayStub, token: ServiceToken | None, timeout_s: float = 300.0):
        self.stub = stub
        self.token = token
        self.timeout_s = timeout_s
        self.force_allowed = True

    async def refresh(self, item: WorkItem, fencing_token: int) -> RefreshOutcome:
        force = item.prefetch and self.force_allowed
        request = gw.RefreshRequest(account_id=item.account_id, since=item.days.since.isoformat(),
                                    until=item.days.until.isoformat(), force=force)
        metadata = tuple(self.token.metadata() if self.token else ()) + ((FENCING_METADATA_KEY, str(fencing_token)),)
        try:
            reply = await self.stub.Refresh(request, timeout=self.timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            if force and exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                log.warning("the gateway refuses forced refreshes for the scheduler's token (%s); "
                            "prefetching for live pages is off - give the token the operator role", exc.details())
                self.force_allowed = False
                return await self.refresh(item, fencing_token)
            raise RefreshFailed(exc.code().name, exc.details() or "") from None
        return RefreshOutcome(reply.upstream_calls, reply.rows_changed, reply.version)
