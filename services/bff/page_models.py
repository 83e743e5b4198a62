"""Page models read from the gateway at one version, kept per (account, range, version) and shared.

Every open page of the same account and range is served the same model object
(and the same encoded bytes): N pages cost one read per version, not N.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass, field

import grpc

from services.bff import page_model
from services.bff.gateway_client import GatewayClient
from services.bff.problems import Problem
from services.bff.users import User
from services.common.error_boundary import RETRYABLE_CODES


@dataclass
class Model:
    key: tuple[str, str, str]
    version: int
    data: dict
    _encoded: bytes | None = field(default=None, repr=False)
    # what it was built from, kept while it is the latest model of its key (for ``apply_change``)
    rows: dict | None = field(default=None, repr=False)   # (ad_id, date) -> InsightRow
    info: dict | None = field(default=None, repr=False)

    @property
    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode()
        return self._encoded


def account_view(summary) -> dict:
    return {"id": f"act_{summary.account_id}", "name": summary.name or f"act_{summary.account_id}",
            "currency": summary.currency, "timezone": summary.timezone_name}


class PageModels:
    def __init__(self, gateway: GatewayClient, keep: int = 256):
        self.gateway = gateway
        self.keep = keep
        self._models: OrderedDict[tuple, Model] = OrderedDict()      # (key, version) -> model
        self._latest: dict[tuple, Model] = {}
        self._locks: dict[tuple, asyncio.Lock] = {}

    async def account(self, user: User, account: str) -> dict:
        for a in await self.gateway.list_accounts(user):
            if a.account_id == account:
                return account_view(a)
        return {"id": f"act_{account}", "name": f"act_{account}", "currency": "", "timezone": ""}

    def exact(self, key: tuple, version: int) -> Model | None:
        return self._models.get((key, version))

    async def read(self, user: User, account: str, since: str, until: str, at_least: int = -1) -> Model:
        """The model at the current version (>= ``at_least`` if the cached one is older). Raises AioRpcError."""
        key = (account, since, until)
        latest = self._latest.get(key)
        if latest is not None and latest.version >= at_least >= 0:
            return latest
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            latest = self._latest.get(key)
            if latest is not None and latest.version >= at_least >= 0:
                return latest
            for _ in range(3):
                insights, fatigue = await asyncio.gather(self.gateway.insights(user, account, since, until),
                                                         self.gateway.fatigue(user, account, since, until))
                if insights.version == fatigue.version:
                    break
            else:
                raise Problem(503, "the data kept changing while it was read; reload in a moment",
                              headers={"Retry-After": "2"})
            info = await self.account(user, account)  # after the read: a first read records currency and zone
            cached = self._models.get((key, insights.version))
            if cached is None:
                cached = self._store(key, insights.version, info, insights.rows, fatigue.results, insights.freshness,
                                     stored_days=_stored_days(fatigue))
            else:  # same version: freshness may have moved on
                cached.data["freshness"] = page_model.freshness_view(insights.freshness, info["timezone"])
                cached._encoded = None
                if cached.rows is None:
                    cached.rows, cached.info = {(r.ad_id, r.date_start): r for r in insights.rows}, info
                self._set_latest(key, cached)
            return cached

    async def apply_change(self, user: User, account: str, since: str, until: str, event) -> Model:
        """The model at ``event.version``: the latest model plus the event's rows (a Subscribe CHANGE) and the
        scores of GetFatigue at that version — one gateway read instead of two. Falls back to ``read`` when the
        latest model is not the base of the event or the scores are of another version."""
        key = (account, since, until)
        async with self._locks.setdefault(key, asyncio.Lock()):
            base = self._latest.get(key)
            if base is not None and base.version >= event.version:
                return base
            if base is not None and base.rows is not None and (event.rows or event.removed):
                fatigue = await self.gateway.fatigue(user, account, since, until)
                if fatigue.version == event.version:
                    rows = dict(base.rows)
                    for r in event.removed:
                        rows.pop((r.ad_id, r.date_start), None)
                    for r in event.rows:
                        if since <= r.date_start <= until:
                            rows[(r.ad_id, r.date_start)] = r
                    return self._store(key, event.version, base.info, list(rows.values()), fatigue.results,
                                       fatigue.freshness, rows, _stored_days(fatigue))
        return await self.read(user, account, since, until, at_least=event.version)

    def _store(self, key, version: int, info: dict, rows, results, freshness, by_key: dict | None = None,
               stored_days=None) -> Model:
        data = page_model.build(info, key[1], key[2], version, rows, results, freshness, stored_days)
        model = Model(key, version, data, rows=by_key or {(r.ad_id, r.date_start): r for r in rows}, info=info)
        self._models[(key, version)] = model
        while len(self._models) > self.keep:
            self._models.popitem(last=False)
        self._set_latest(key, model)
        return model

    def _set_latest(self, key, model: Model) -> None:
        old = self._latest.get(key)
        if old is not None and old is not model:
            old.rows = None  # only the latest model of a key keeps its rows
        self._latest[key] = model


def is_transient(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() in RETRYABLE_CODES


def _stored_days(fatigue) -> object | None:
    """``GetFatigueResponse.stored_days`` when the gateway set it (an answer without any ad), else None."""
    return fatigue.stored_days if fatigue.HasField("stored_days") else None
