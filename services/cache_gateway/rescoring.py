"""Scores follow the data (issue 6, R8): rescore the ads a write changed, store them with their version.

After a write that changed rows, the writing gateway queues the changed ad
ids; a background task reads each ad's whole stored history in one
consistent read (so a score is never computed from a mix of versions), asks
FatigueEngine.ScoreAds, and stores each result in ``scores`` tagged with the
insights version it was computed from (a newer stored score always wins).
The change stream carries stored scores to subscribers on every replica.
With an ``alerter`` (``fatigue_alerts.py``), ads whose stored level crossed
into or out of warning / critical are handed to it, per account.

A rescoring that fails for a passing reason (FatigueEngine unreachable, slow or
busy; the store or Redis unreachable: ``error_boundary.RETRYABLE_CODES``,
``error_boundary.classify``) is not dropped: its ads go back in the queue after
a backoff (1 s, doubling up to ``retry_max_s``), merged with whatever was queued
since, until it succeeds, so scores catch up with the data once the fault is
gone without another write. A refusal that would repeat (the engine's
INVALID_ARGUMENT for those rows, a bug) is logged as an error and not retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import grpc

from services.cache_gateway.fatigue_alerts import FatigueAlerter, level_changes
from services.cache_gateway.l2_store import InsightsStore
from services.common.error_boundary import RETRYABLE_CODES, classify
from services.common.fatigue_text import level_name
from services.common.pb.adfatigue.v1 import fatigue_engine_pb2, fatigue_pb2
from services.common.row_proto import row_to_proto
from services.cache_gateway import metrics

log = logging.getLogger(__name__)

class EngineUnavailable(RuntimeError):
    """ScoreAds failed for a passing reason (``RETRYABLE_CODES``): retried after a backoff."""


class Rescorer:
    def __init__(self, store: InsightsStore, engine_stub, timeout_s: float = 60.0, metadata=lambda: None,
                 alerter: FatigueAlerter | None = None, retry_first_s: float = 1.0, retry_max_s: float = 30.0):
        """``metadata``: call metadata of each ScoreAds (the gateway's service token); ``alerter``: where
        level changes go (fatigue_alerts.py); ``retry_first_s`` / ``retry_max_s``: the first and the longest
        wait, seconds, before a failed account's ads are tried again (doubling in between)."""
        self.store = store
        self.alerter = alerter
        self.engine = engine_stub
        self.metadata = metadata
        self.timeout_s = timeout_s
        self._pending: dict[str, set[str]] = defaultdict(set)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.retry_first_s, self.retry_max_s = retry_first_s, retry_max_s
        self._failures: dict[str, int] = {}  # account -> consecutive failed rescorings
        self._retries: set[asyncio.Task] = set()
        self._waiting: dict[str, set[str]] = {}  # account -> ads of its waiting retry

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
                except Exception as exc:  # keep going; passing faults are tried again after a backoff
                    metrics.rescore_runs.add(1, {"outcome": "error"})
                    if not (isinstance(exc, EngineUnavailable) or classify(exc) is not None):
                        log.error("rescoring %d ad(s) of act_%s failed and is not retried (it would fail the same "
                                  "way): %s", len(ad_ids), account_id, exc)
                        continue
                    failures = self._failures[account_id] = self._failures.get(account_id, 0) + 1
                    delay = min(self.retry_max_s, self.retry_first_s * 2 ** (failures - 1))
                    log.warning("rescoring %d ad(s) of act_%s failed (%d in a row): %s; trying again in %.0f s",
                                len(ad_ids), account_id, failures, exc, delay)
                    self._retry_later(account_id, ad_ids, delay)
                else:
                    self._failures.pop(account_id, None)

    def _retry_later(self, account_id: str, ad_ids: set[str], delay_s: float) -> None:
        """One waiting retry per account: ads of a later failure join the one already waiting."""
        if account_id in self._waiting:
            self._waiting[account_id].update(ad_ids)
            return
        self._waiting[account_id] = set(ad_ids)

        async def retry():
            await asyncio.sleep(delay_s)
            self.schedule(account_id, frozenset(self._waiting.pop(account_id, ())))
        task = asyncio.create_task(retry())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def rescore(self, account_id: str, ad_ids: set[str]) -> int:
        """Score ``ad_ids`` from one consistent read and store the results; returns how many were stored."""
        version, series = await self.store.ad_series(account_id, ad_ids)
        # one attribution setting per score (the engine refuses a mix): the one of the ad's most recent row
        series = {ad: [r for r in rows if r.action_attribution_windows == rows[-1].action_attribution_windows]
                  for ad, rows in series.items() if rows}
        latest = {rows[-1].action_attribution_windows for rows in series.values()}
        if len(latest) > 1:  # the account's setting is changing: score the ads of the newest setting only
            newest = max((rows[-1] for rows in series.values()),
                         key=lambda r: r.fetched_at.timestamp() if r.fetched_at else 0.0).action_attribution_windows
            series = {ad: rows for ad, rows in series.items() if rows[-1].action_attribution_windows == newest}
        if not series:
            return 0
        request = fatigue_engine_pb2.ScoreAdsRequest(
            account_id=account_id, insights_version=version,
            ads=[fatigue_pb2.AdSeries(ad_id=ad, days=[row_to_proto(r) for r in rows]) for ad, rows in series.items()],
        )
        try:
            reply = await self.engine.ScoreAds(request, timeout=self.timeout_s, metadata=self.metadata())
        except grpc.aio.AioRpcError as exc:
            kind = EngineUnavailable if exc.code() in RETRYABLE_CODES else RuntimeError
            raise kind(f"fatigue_engine: {exc.code().name} {exc.details()}") from None
        before = await self._stored_levels(account_id, series) if self.alerter else {}
        stored = 0
        saved: list[tuple[fatigue_pb2.FatigueResult, str, str]] = []
        for result in reply.results:
            rows = series.get(result.ad_id)
            if rows and await self.store.save_score(account_id, result.ad_id, version,
                                                    result.SerializeToString(deterministic=True),
                                                    rows[0].date_start, rows[-1].date_start):
                stored += 1
                saved.append((result, rows[0].date_start.isoformat(), rows[-1].date_start.isoformat()))
        if self.alerter:
            changes = level_changes(before, saved)
            if changes:
                state = await self.store.account(account_id)
                self.alerter.add(account_id, changes, state.currency if state else "")
        metrics.rescore_runs.add(1, {"outcome": "ok"})
        return stored

    async def _stored_levels(self, account_id: str, ad_ids) -> dict[str, str]:
        """Ad id -> level of its stored score (before this rescoring)."""
        levels = {}
        for doc in await self.store.stored_scores(account_id, ad_ids):
            levels[doc["ad_id"]] = level_name(fatigue_pb2.FatigueResult.FromString(doc["result"]).level)
        return levels

    async def close(self) -> None:
        for task in list(self._retries):
            task.cancel()
        if self.alerter:
            await self.alerter.aclose()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
