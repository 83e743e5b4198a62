"""CacheGateway gRPC servicer: validation, status codes, L1 — the transport edge.

Unary methods return *serialized bytes* (see ``handlers.py``): an L1 hit
sends the cached bytes untouched, so every caller of the same request at the
same version receives byte-identical answers (R1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, time as dt_time, timedelta, timezone

import grpc

from services.cache_gateway.insights_service import FRESH, InsightsService
from services.cache_gateway.l1_cache import CachedResponse, L1Cache
from services.cache_gateway.responses import (
    InvalidRequest, StalePageToken, check_fields, freshness_bytes, insights_response_bytes, page_binding, page_bounds,
)
from services.cache_gateway import metrics, stats
from services.cache_gateway.account_replica import ROWS_FIELD, frame
from services.cache_gateway.fatigue_scoring import FatigueScorer
from services.common.audit_log import AuditLog, audit_call, audited, current_caller, status_of
from services.cache_gateway.change_feed import Change
from services.cache_gateway.l2_store import replay_since
from services.cache_gateway.rescoring import Rescorer
from services.cache_gateway.subscriptions import SubscriptionHub
from services.cache_gateway.single_flight import SharedAnswers
from services.cache_gateway.upstream import UpstreamError
from services.common.auth import (
    OPERATOR, SCHEDULER, AuthError, JwtVerifier, Principal, ServiceToken, require_account, require_operator,
    require_role,
)
from services.common.account_ids import InvalidAccountId, normalise_account_id
from services.common.fatigue_config import config_problem
from services.common.dates import DateRange, InvalidDateRange, account_today, parse_range, zone
from services.common.error_boundary import peer_message
from services.common.grpc_server import service_channel
from services.common.pb.adfatigue.v1 import (
    cache_gateway_pb2 as gw, fatigue_engine_pb2_grpc, fatigue_pb2,
)
from services.common.row_proto import row_to_proto
from services.common.telemetry import rpc_tier

log = logging.getLogger(__name__)

_L1_HIT = metrics.cache_reads.series(tier=metrics.L1, **metrics.HIT)
_L1_MISS = metrics.cache_reads.series(tier=metrics.L1, **metrics.MISS)
_AVOIDED_L1 = metrics.meta_calls_avoided.series(reason="l1_fresh")
_JOINED = {"reason": "single_flight"}
_EVENT = {kind: {"kind": kind} for kind in ("snapshot", "change", "jump")}


def _tier(result) -> str:
    """The tier that answered a read (l1: memoised; l3: Meta was called first)."""
    return metrics.L3 if result is not None and result.fetched_ranges else metrics.L2 if result is not None else metrics.L1


def _answered(result) -> None:
    """Say which tier answered the read: the ``tier`` attribute of the call's ``rpc.server.call.duration``
    (services/common/telemetry.py, one measurement per call)."""
    rpc_tier.set(_tier(result))


def _delivered(change: Change) -> None:
    """One CHANGE event handed to gRPC: count it and its commit-to-delivery latency."""
    metrics.subscription_events.add(1, _EVENT["change"])
    if change.committed_at is not None:
        metrics.delivery_duration.observe(max(0.0, (datetime.now(timezone.utc) - change.committed_at).total_seconds()))


#: SubscribeEvent fields joined from serialized elements (repeated fields concatenate on the wire).
assert gw.SubscribeEvent.DESCRIPTOR.fields_by_name["rows"].number == ROWS_FIELD  # rows are joined as framed
_EVENT_FATIGUE = gw.SubscribeEvent.DESCRIPTOR.fields_by_name["fatigue"].number
_FATIGUE_FRESHNESS = gw.GetFatigueResponse.DESCRIPTOR.fields_by_name["freshness"].number



_principal = current_caller  # the authenticated caller of the RPC being served (read by the audit)


class L1Totals:
    """The whole L1 as one cache for its gauges and GetStats: the accounts' replicas, memoised answers and
    memoised fatigue results (bytes, budget, entries = resident accounts + memoised answers)."""

    def __init__(self, servicer: "CacheGatewayServicer"):
        self._s = servicer

    def _parts(self) -> list:
        replicas = self._s.service.replicas
        return [self._s.l1, self._s.scorer] + ([replicas] if replicas is not None else [])

    @property
    def bytes_used(self) -> int:
        return sum(p.bytes_used for p in self._parts())

    @property
    def max_bytes(self) -> int:
        return sum(p.max_bytes for p in self._parts())

    def __len__(self) -> int:
        replicas = self._s.service.replicas
        return len(self._s.l1) + (len(replicas) if replicas is not None else 0)


class CacheGatewayServicer:
    def __init__(self, service: InsightsService, l1: L1Cache, fatigue_engine_target: str,
                 verifier: JwtVerifier, audit: AuditLog, hub: SubscriptionHub | None = None,
                 service_token: ServiceToken | None = None, fatigue_memo_bytes: int = 8 * 1024 * 1024):
        """``service_token``: the gateway's own identity, sent to fatigue_engine (which refuses anonymous calls);
        ``fatigue_memo_bytes``: the byte budget of memoised fatigue results."""
        self.hub = hub or SubscriptionHub()
        self.service = service
        self.l1 = l1
        self.verifier = verifier
        self.audit = audit
        self._engine_channel = service_channel(fatigue_engine_target)
        self._engine = fatigue_engine_pb2_grpc.FatigueEngineStub(self._engine_channel)
        self._engine_metadata = service_token.metadata if service_token else (lambda: None)
        self.rescorer = Rescorer(service.store, self._engine, metadata=self._engine_metadata)
        self.scorer = FatigueScorer(self._engine_channel, service.replicas, fatigue_memo_bytes,
                                    metadata=self._engine_metadata)
        self.fencing = None  # FencingCheck: refuses a deposed scheduler leader's Refresh
        self.demand = None   # DemandTracker: reads and subscribers per account, for the scheduler
        self.l2_reads = None  # L2ReadCounter on the store's client (GetStats)
        #: (account_id, since, until) as sent -> (account, range, zone name, UTC time the account's day ends):
        #: a valid request's parse, reused until that day ends or the account's zone becomes known
        self._valid: dict[tuple[str, str, str], tuple[str, DateRange, str | None, float]] = {}
        self._answers = SharedAnswers()  # L1 key -> the answer being computed (see _shared)
        self.l1_totals = L1Totals(self)
        service.on_change = self._on_change
        if service.replicas is not None:  # a replica changed or went: answers memoised from it are void
            service.replicas.listeners.append(self.l1.invalidate_account)

    def _on_change(self, account_id: str, version: int, changed_ads: frozenset[str]) -> None:
        """This replica wrote a change: evict L1 at once and rescore the ads it touched."""
        self.l1.invalidate_account(account_id, below_version=version)
        self.rescorer.schedule(account_id, changed_ads)

    def on_committed(self, change: Change) -> None:
        """A change committed by any replica (from the change feed): evict L1, notify subscribers."""
        if change.rows or change.removed:
            self.l1.invalidate_account(change.account_id, below_version=change.version)
        self.hub.publish(change)

    def on_resync(self) -> None:
        self.l1.clear()
        if self.service.replicas is not None:
            self.service.replicas.on_resync()
        self.hub.resync()

    # -- helpers ------------------------------------------------------------------------------
    async def _authenticate(self, context) -> Principal:
        try:
            principal = self.verifier.authenticate(context.invocation_metadata())
        except AuthError as exc:
            await context.abort(exc.code, exc.message)
        _principal.set(principal)
        return principal

    async def _authorise(self, context, request, roles_for: str = "",
                         roles: frozenset[str] = frozenset({OPERATOR})) -> tuple[str, DateRange]:
        """Authenticate, validate account and dates, check the caller may read the account (and, with
        ``roles_for``, holds one of ``roles``); PERMISSION_DENIED otherwise."""
        principal = await self._authenticate(context)
        account, days = await self._validate(context, request.account_id, request.since, request.until)
        try:
            require_account(principal, account)
            if roles_for:
                require_role(principal, roles, roles_for)
        except AuthError as exc:
            await context.abort(exc.code, exc.message)
        return account, days

    async def _validate(self, context, account_id: str, since: str, until: str) -> tuple[str, DateRange]:
        """The account and range of a request (INVALID_ARGUMENT otherwise). A valid answer is memoised until the
        account's day ends (the retention floor and "not after today" move with it) or its zone is learned."""
        key = (account_id, since, until)
        known = self._valid.get(key)
        if known is not None and time.time() < known[3] and self.service.known_timezone(known[0]) == known[2]:
            return known[0], known[1]
        try:
            account = normalise_account_id(account_id)
            tz_name = await self.service.timezone_name(account)
            today = account_today(tz_name)
            days = parse_range(since, until, today=today)
        except (InvalidAccountId, InvalidDateRange, InvalidRequest) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if len(self._valid) >= 10_000:
            self._valid.clear()
        if tz_name:
            day_ends = datetime.combine(today + timedelta(days=1), dt_time(), tzinfo=zone(tz_name)).timestamp()
        else:  # no zone yet: "today" is UTC + 1 day, which ends at UTC midnight
            day_ends = datetime.combine(today, dt_time(), tzinfo=timezone.utc).timestamp()
        self._valid[key] = (account, days, tz_name, day_ends)
        return account, days

    async def _read(self, context, account: str, days: DateRange):
        """Read through the tiers within the caller's deadline (the shared fetch itself goes on)."""
        remaining = context.time_remaining()
        try:
            return await asyncio.wait_for(self.service.read(account, days), remaining)
        except asyncio.TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"act_{account} {days} was not ready within the call's deadline; "
                                "the fetch continues, retry shortly")
        except UpstreamError as exc:
            message = exc.message
            if exc.code == grpc.StatusCode.NOT_FOUND:
                message = f"ad account act_{account} is not known to the provider: {exc.message}"
            elif exc.code == grpc.StatusCode.UNAVAILABLE:
                message = f"no cached data for act_{account} {days} and the upstream failed: {exc.message}"
            await context.abort(exc.code, message)

    def _remember(self, key, payload: bytes, result, account: str) -> None:
        """Keep a FRESH answer in L1 until its first day becomes due (or the L1 TTL, if sooner)."""
        if result.status != FRESH:
            return
        max_age = None
        if result.fresh_until is not None:
            max_age = (result.fresh_until - self.service.clock()).total_seconds()
            if max_age <= 0:
                return
        self.l1.put(key, CachedResponse(payload, result.snapshot.version, account, max_age))

    # -- RPCs ---------------------------------------------------------------------------------
    @audited
    async def GetInsights(self, request: gw.GetInsightsRequest, context) -> bytes:
        account, days = await self._authorise(context, request)
        if self.demand:
            self.demand.record_read(account, days.since, days.until)
        try:
            fields = check_fields(request.fields)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        # the range as its two dates (hashed in C; DateRange's dataclass hash runs Python on every look-up)
        key = ("insights", account, days.since, days.until, fields, request.page_size, request.page_token)
        cached = self.l1.get(key)
        if cached is not None:
            _L1_HIT[1] += 1
            _AVOIDED_L1[1] += 1
            _answered(None)
            return cached.payload
        _L1_MISS[1] += 1
        return await self._shared(key, lambda: self._insights_answer(request, context, account, days, fields, key))

    async def _insights_answer(self, request, context, account: str, days: DateRange, fields, key) -> tuple[bytes, str]:
        """An L1 miss of GetInsights: (the answer, the tier that answered)."""
        result = await self._read(context, account, days)
        binding = page_binding(account, days.since, days.until, fields)
        try:
            offset, size = page_bounds(request.page_size, request.page_token, result.snapshot.version,
                                       len(result.snapshot.rows), binding)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StalePageToken as exc:
            await context.abort(grpc.StatusCode.ABORTED, str(exc))
        payload = insights_response_bytes(
            account, result, fields, offset, size,
            freshness_bytes(result, self.service.policy, zone(result.snapshot.timezone), self.service.clock()), binding)
        self._remember(key, payload, result, account)
        return payload, _tier(result)

    async def _shared(self, key, answer) -> bytes:
        """Concurrent identical L1 misses share one answer (the same bytes every caller would get; see
        ``SharedAnswers``): ``answer()`` -> (bytes, tier)."""
        (payload, tier), joined = await self._answers.run(key, answer)
        if joined:
            # answered by a read in flight: an L2 read of the same outcome (Meta was not called for it)
            metrics.cache_reads.add(1, metrics.L2_MISS if tier == metrics.L3 else metrics.L2_HIT)
            metrics.meta_calls_avoided.add(1, _JOINED)
        rpc_tier.set(tier)
        return payload

    @audited
    async def GetFatigue(self, request: gw.GetFatigueRequest, context) -> bytes:
        account, days = await self._authorise(context, request)
        if request.HasField("config") and (problem := config_problem(request.config)):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if self.demand:
            self.demand.record_read(account, days.since, days.until)
        config = request.config.SerializeToString(deterministic=True)
        key = ("fatigue", account, days.since, days.until, config)
        cached = self.l1.get(key)
        if cached is not None:
            _L1_HIT[1] += 1
            _AVOIDED_L1[1] += 1
            _answered(None)
            return cached.payload
        _L1_MISS[1] += 1
        return await self._shared(key, lambda: self._fatigue_answer(request, context, account, days, config, key))

    async def _fatigue_answer(self, request, context, account: str, days: DateRange, config: bytes,
                              key) -> tuple[bytes, str]:
        """An L1 miss of GetFatigue: (the answer, the tier that answered)."""
        result = await self._read(context, account, days)
        try:
            results = await self.scorer.score(account, days, result, request.config, config)
        except grpc.aio.AioRpcError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"fatigue_engine failed: {peer_message(exc, 'fatigue_engine')}; retry shortly")
        # fields in number order: account_id, version | results, freshness (joined bytes) | the rest
        head = gw.GetFatigueResponse(account_id=account, version=result.snapshot.version)
        tail = gw.GetFatigueResponse(account_currency=await self.service.currency(account))
        if not results:  # say where the account's data lies (docs: GetFatigueResponse.stored_days)
            stored = result.replica.stored_days() if result.replica is not None else \
                await self.service.store.stored_days(account)
            if stored is not None:
                tail.stored_days.since, tail.stored_days.until = stored.since.isoformat(), stored.until.isoformat()
        fresh = freshness_bytes(result, self.service.policy, zone(result.snapshot.timezone), self.service.clock())
        payload = b"".join((head.SerializeToString(deterministic=True), results, frame(_FATIGUE_FRESHNESS, fresh),
                            tail.SerializeToString(deterministic=True)))
        self._remember(key, payload, result, account)
        return payload, _tier(result)

    @audited
    async def Refresh(self, request: gw.RefreshRequest, context) -> bytes:
        """Fetch the due days of the range (all of them with ``force``: operator or scheduler only).

        Readers of the account may refresh it; only the scheduler identity may (and must) send
        ``x-fencing-token``, checked against the lease's durable record (demand_fencing.py).
        """
        account, days = await self._authorise(context, request, "a forced refresh" if request.force else "",
                                              frozenset({OPERATOR, SCHEDULER}))
        if self.fencing:
            await self.fencing.enforce(context, _principal.get())
        try:
            (ranges, changed), calls = await self.service.counted(self.service.refresh(account, days, force=request.force))
        except UpstreamError as exc:
            await context.abort(exc.code, f"refresh of act_{account} {days} failed: {exc.message}")
        return gw.RefreshResponse(
            account_id=account, version=await self.service.store.range_version(account, days), rows_changed=changed,
            upstream_calls=calls,
            fetched_ranges=[gw.DateRange(since=r.since.isoformat(), until=r.until.isoformat()) for r in ranges],
        ).SerializeToString()

    @audited
    async def ListAccounts(self, request: gw.ListAccountsRequest, context) -> bytes:
        """The accounts the caller may read: those L2 knows, plus those its token names (``known=false``)."""
        principal = await self._authenticate(context)
        stored = {a.account_id: a for a in await self.service.store.list_accounts() if principal.may_read(a.account_id)}
        reply = gw.ListAccountsResponse()
        for account_id in sorted(stored.keys() | (principal.accounts - {"*"})):
            state = stored.get(account_id)
            if state is None:
                reply.accounts.add(account_id=account_id, known=False)
            else:
                reply.accounts.add(account_id=account_id, name=state.name,
                                   currency=state.currency, timezone_name=state.timezone,
                                   version=state.version, known=True)
        return reply.SerializeToString()

    @audited
    async def GetStats(self, request: gw.GetStatsRequest, context) -> bytes:
        """The gateway's counters (operator role; PERMISSION_DENIED otherwise). L1 = the accounts' replicas
        plus memoised answers and fatigue results."""
        principal = await self._authenticate(context)
        try:
            require_operator(principal, "GetStats")
        except AuthError as exc:
            await context.abort(exc.code, exc.message)
        replicas, l1 = self.service.replicas, self.l1_totals
        return gw.GatewayStats(
            **stats.counters(), l1_bytes=l1.bytes_used, l1_max_bytes=l1.max_bytes, l1_entries=len(l1),
            l2_reads=self.l2_reads.reads if self.l2_reads else 0,
            l1_accounts=len(replicas) if replicas else 0, l1_replica_loads=replicas.loads if replicas else 0,
        ).SerializeToString()

    async def Subscribe(self, request: gw.SubscribeRequest, context):
        """Snapshot (or the changes after ``from_version``), then every committed change of the range.

        Audited twice: ``phase`` "start" (the opening, with its status) and, for an opened stream,
        "end" with ``events`` (how many events it delivered) and the status it ended with.
        """
        async with audit_call(self.audit, "Subscribe", request, context, phase="start"):
            account, days = await self._authorise(context, request)
            try:
                fields = check_fields(request.fields) or None
            except InvalidRequest as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            if request.HasField("from_version") and request.from_version < 0:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"from_version {request.from_version} is negative: pass the last version you "
                                    "received")
        caller = current_caller.get()
        events, error = 0, None
        try:
            async for event in self._events(request, context, account, days, fields):
                events += 1  # handed to gRPC for sending (a client that leaves may not read the last one)
                yield event
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self.audit.record(caller.caller if caller else "", "Subscribe", request.account_id,
                                    status_of(error, context), request.since, request.until, phase="end",
                                    events=events)

    async def _events(self, request: gw.SubscribeRequest, context, account: str, days: DateRange, fields):
        """The events of one opened Subscribe stream (see ``Subscribe``)."""
        sub = self.hub.subscribe(account, days)
        metrics.subscriptions_open.add(1)
        if self.demand:
            self.demand.subscribed(account)
        scores_sent: dict[str, int] = {}  # ad_id -> insights version of the last score sent
        try:
            resumed = False
            if request.HasField("from_version"):
                state = await self.service.store.account(account)
                current = state.version if state else 0
                if request.from_version <= current:  # a version we know: replay what changed after it,
                    resumed = True                   # one CHANGE per version, scores included
                    sent = request.from_version
                    for change in await replay_since(self.service.store, account, days, request.from_version,
                                                     current):
                        event = self._event(account, gw.SubscribeEvent.CHANGE, change.version, change.rows,
                                            change.removed, fields)
                        for doc in change.scores:
                            event.fatigue.append(fatigue_pb2.FatigueResult.FromString(doc["result"]))
                            scores_sent[doc["ad_id"]] = doc["insights_version"]
                        sent = change.version
                        metrics.subscription_events.add(1, _EVENT["change"])
                        yield event
            if not resumed:  # no from_version, or one from another history (e.g. a reset store): start afresh
                _L1_MISS[1] += 1  # a snapshot is never memoised: one L1 miss for its L2 read (hit ratio <= 1)
                result = await self._read(context, account, days)
                sent = result.snapshot.version
                ad_ids = {r.ad_id for r in result.snapshot.rows}
                scores = await self._stored_scores(account, ad_ids)
                scores_sent.update((ad_id, version) for ad_id, version, _ in scores)
                stale = set(ad_ids.difference(scores_sent))  # no score (never scored, or quarantined)
                if result.entries is not None:  # resident: a score older than its ad's rows (a lost rescoring)
                    for row, entry in zip(result.snapshot.rows, result.entries):
                        if entry.version > scores_sent.get(row.ad_id, entry.version):
                            stale.add(row.ad_id)
                self.rescorer.schedule(account, frozenset(stale))
                metrics.subscription_events.add(1, _EVENT["snapshot"])
                yield self._state_event(account, gw.SubscribeEvent.SNAPSHOT, result.snapshot, result.entries, fields,
                                        [result_bytes for _, _, result_bytes in scores])
            while True:
                change = await sub.queue.get()
                if sub.closed:
                    await context.abort(grpc.StatusCode.UNAVAILABLE,
                                        f"gateway shutting down: reconnect with from_version={sent}")
                if change is None:
                    if sub.lagging:
                        sub.lagging = False
                        replica = await self.service.replicas.get(account) if self.service.replicas else None
                        snap, entries = replica.read(days) if replica else \
                            (await self.service.store.snapshot(account, days), None)
                        if snap.version > sent:
                            sent = snap.version
                            metrics.subscription_events.add(1, _EVENT["jump"])
                            yield self._state_event(account, gw.SubscribeEvent.JUMP, snap, entries, fields, [])
                    continue
                if change.scores and not change.rows and not change.removed:
                    # a score is news only if it is newer than the one this subscriber has for the ad
                    parsed = change.encoded.get("scores")
                    if parsed is None:  # parsed once for every subscriber
                        parsed = change.encoded["scores"] = [fatigue_pb2.FatigueResult.FromString(b)
                                                             for b, _, _ in change.scores]
                    fresh = tuple(i for i, r in enumerate(parsed)
                                  if r.insights_version > scores_sent.get(r.ad_id, -1) and r.insights_version >= sent)
                    if fresh:
                        # subscribers to whom the same scores are news get the same bytes: encoded once per set
                        key = ("scores", fresh)
                        payload = change.encoded.get(key)
                        if payload is None:
                            event = self._event(account, gw.SubscribeEvent.CHANGE, change.version, [], [], fields,
                                                change)
                            event.fatigue.extend(parsed[i] for i in fresh)
                            payload = change.encoded[key] = event.SerializeToString(deterministic=True)
                        scores_sent.update({parsed[i].ad_id: parsed[i].insights_version for i in fresh})
                        sent = max(sent, change.version)
                        _delivered(change)
                        yield payload
                    continue
                if change.version <= sent:
                    continue
                sent = change.version
                # every subscriber of the same range and fields gets the same bytes: encode them once
                key = (days, fields)
                payload = change.encoded.get(key)
                if payload is None:
                    rows = [r for r in change.rows if days.since <= r.date_start <= days.until]
                    removed = [(ad, d) for ad, d in change.removed if days.since <= d <= days.until]
                    payload = change.encoded[key] = self._event(
                        account, gw.SubscribeEvent.CHANGE, sent, rows, removed, fields, change).SerializeToString()
                _delivered(change)
                yield payload
        finally:
            metrics.subscriptions_open.add(-1)
            self.hub.unsubscribe(sub)
            if self.demand:
                self.demand.unsubscribed(account)

    async def _stored_scores(self, account: str, ad_ids: set[str]) -> list[tuple[str, int, bytes]]:
        """(ad_id, insights_version, serialized FatigueResult) of the ads' stored scores, from memory when resident."""
        replica = self.service.replicas.peek(account) if self.service.replicas else None
        if replica is not None:
            return [(s.ad_id, s.insights_version, s.result) for s in replica.stored_scores(ad_ids)]
        return [(d["ad_id"], d["insights_version"], bytes(d["result"]))
                for d in await self.service.store.stored_scores(account, ad_ids)]

    def _state_event(self, account: str, kind, snap, entries, fields, scores: list[bytes]) -> bytes:
        """A SNAPSHOT or JUMP event, serialized; rows of a replica (all fields) are joined from their bytes."""
        if entries is None or fields:
            event = self._event(account, kind, snap.version, snap.rows, [], fields)
            event.fatigue.extend(fatigue_pb2.FatigueResult.FromString(b) for b in scores)
            return event.SerializeToString(deterministic=True)
        head = gw.SubscribeEvent(kind=kind, version=snap.version).SerializeToString(deterministic=True)
        return b"".join((head, *(e.as_rows_element() for e in entries),
                         *(frame(_EVENT_FATIGUE, b) for b in scores)))

    @staticmethod
    def _event(account: str, kind, version: int, rows, removed, fields, change: Change | None = None):
        event = gw.SubscribeEvent(kind=kind, version=version, rows=[row_to_proto(r, fields) for r in rows])
        for ad_id, day in removed:
            event.removed.add(account_id=account, ad_id=ad_id,
                              date_start=day.isoformat(), date_stop=day.isoformat())
        if change is not None:
            event.committed_at.FromDatetime(change.committed_at)
        return event

    async def close(self) -> None:
        await self.rescorer.close()
        await self._engine_channel.close()

