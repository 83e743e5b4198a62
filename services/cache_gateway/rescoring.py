"""Scores follow the data (issue 6, R8): rescore the ads a write changed, store them with their version.

After a write that changed rows, the writing gateway queues the changed ad
ids; a background task reads each ad's whole stored history in one
consistent read (so a score is never computed from a mix of versions), asks
FatigueEngine.ScoreAds, and stores each result in ``scores`` tagged with the
insights version it was computed from (a newer stored score always wins).
The change stream carries stored scores to subscribers on every replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import grpc

from services.cache_gateway.l2_store import InsightsStore
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_pb2
from services.common.row_proto import row_to_proto
from services.cache_gateway import metrics

log = logging.getLogger(__name__)


class Rescorer:
    def __init__(self, store: InsightsStore, engine_stub, timeout_s: float = 60.0):
        self.store = store
        self.engine = engine_stub
        self.timeout_s = timeout_s
        self._pending: dict[str, set[str]] = defaultdict(set)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def schedule(self, account_id: str, ad_ids: frozenset[str]) -> None:
        """Queue ads for rescoring (coalesced: many writes in a row cost one scoring per ad)."""
        if ad_ids:
            self._pending[account_id].update(ad_ids)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                account_id, ad_ids = self._pending.popitem()
                try:
                    await self.rescore(account_id, ad_ids)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # keep going; the next change rescores again
                    metrics.rescore_runs.add(1, {"outcome": "error"})
                    log.warning("rescoring %d ad(s) of act_%s failed: %s", len(ad_ids), account_id, exc)

    async def rescore(self, account_id: str, ad_ids: set[str]) -> int:
        """Score ``ad_ids`` from one consistent read and store the results; returns how many were stored."""
        version, series = await self.store.ad_series(account_id, ad_ids)
        series = {ad: rows for ad, rows in series.items() if rows}
        if not series:
            return 0
        request = fatigue_engine_pb2.ScoreAdsRequest(
            account_id=account_id, insights_version=version,
            ads=[fatigue_pb2.AdSeries(ad_id=ad, days=[row_to_proto(r) for r in rows]) for ad, rows in series.items()],
        )
        try:
            reply = await self.engine.ScoreAds(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise RuntimeError(f"fatigue_engine: {exc.code().name} {exc.details()}") from None
        stored = 0
        for result in reply.results:
            rows = series.get(result.ad_id)
            if rows:
                stored += await self.store.save_score(account_id, result.ad_id, version,
                                                      result.SerializeToString(deterministic=True),
                                                      rows[0].date_start, rows[-1].date_start)
        metrics.rescore_runs.add(1, {"outcome": "ok"})
        return stored

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
