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


@dataclass
class Model:
    key: tuple[str, str, str]
    version: int
    data: dict
    _encoded: bytes | None = field(default=None, repr=False)

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
                data = page_model.build(info, since, until, insights.version, insights.rows, fatigue.results,
                                        insights.freshness)
                cached = Model(key, insights.version, data)
                self._models[(key, insights.version)] = cached
                while len(self._models) > self.keep:
                    self._models.popitem(last=False)
            else:  # same version: freshness may have moved on
                cached.data["freshness"] = page_model.freshness_view(insights.freshness, info["timezone"])
                cached._encoded = None
            self._latest[key] = cached
            return cached


def is_transient(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                          grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED)
