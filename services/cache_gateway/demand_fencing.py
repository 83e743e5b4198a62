"""Fencing of the scheduler's refreshes (DESIGN.md R6: exactly one active scheduler).

The scheduler leader holds a lease in Redis (``services/scheduler/leader_lease.py``);
each acquisition takes the next *fencing token* from the lease's durable record
in MongoDB (``services/common/lease_record.py``: strictly increasing, also when
Redis restarts empty). The leader sends its token with every Refresh in gRPC
metadata ``x-fencing-token``:

    fencing = FencingCheck(LeaseRecords.of(db), settings.lease_key)   # once, at start-up
    ...
    await fencing.enforce(context, principal)    # in Refresh, after authentication

Rules:

- only the ``scheduler`` service identity may present a token; anyone else
  sending one gets PERMISSION_DENIED (a reader cannot fence the scheduler out);
- a scheduler's Refresh must carry one (FAILED_PRECONDITION otherwise);
- the token must equal the token of the lease's record, that is what the
  current leader holds; an older one (a deposed leader, paused past its lease)
  and a higher one (never issued) are refused with FAILED_PRECONDITION.
  Nothing a caller sends changes what later callers are checked against;
- a token that is not a positive integer is INVALID_ARGUMENT;
- requests with no token from other callers (people, the BFF) are not fenced.

The check runs when the Refresh starts; a leader deposed *during* a refresh
finishes that one refresh. That is harmless: L2 writes are idempotent and
guarded by ``fetched_at`` (l2_store.py), and the next refresh it sends is refused.
"""

from __future__ import annotations

import grpc
from services.cache_gateway import metrics
from pymongo.errors import PyMongoError

from services.common.auth import SCHEDULER, Principal
from services.common.lease_record import LeaseRecords
from services.common.settings import lease_key_for

#: gRPC metadata key carrying the scheduler's fencing token (decimal integer).
FENCING_METADATA_KEY = "x-fencing-token"


class FencingRefused(Exception):
    """A refresh carried a stale or malformed token; ``code`` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def token_from_metadata(metadata) -> int | None:
    """The fencing token of a call's invocation metadata (None when absent).

    Raises FencingRefused(INVALID_ARGUMENT) when present but not a positive integer (at most 19 digits).
    """
    raw = next((v for k, v in (metadata or ()) if k == FENCING_METADATA_KEY), None)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    text = str(raw).strip()
    token = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0
    if token < 1:
        raise FencingRefused(grpc.StatusCode.INVALID_ARGUMENT,
                             f"metadata {FENCING_METADATA_KEY} must be a positive integer "
                             "(the scheduler's fencing token)")
    return token


class FencingCheck:
    """Accepts only the current leader's token, read from the lease's durable record (module docstring)."""

    def __init__(self, records: LeaseRecords, lease_key: str = lease_key_for()):
        self.records = records
        self.lease_key = lease_key
        self.refused = 0

    async def check(self, token: int) -> None:
        """Accept ``token`` or raise FencingRefused (FAILED_PRECONDITION; UNAVAILABLE when the record is unreadable)."""
        try:
            record = await self.records.current(self.lease_key)
        except PyMongoError as exc:
            raise FencingRefused(grpc.StatusCode.UNAVAILABLE,
                                 f"cannot check the fencing token: the lease record is unreadable "
                                 f"({type(exc).__name__}); retry shortly") from None
        current = record.token if record else 0
        if token == current:
            return
        self.refused += 1
        metrics.refresh_fenced.add(1)
        if token < current:
            raise FencingRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                 f"refresh refused: fencing token {token} is older than the current leader's "
                                 f"({current}); this scheduler is no longer the leader")
        raise FencingRefused(grpc.StatusCode.FAILED_PRECONDITION,
                             f"refresh refused: fencing token {token} was never issued (the current leader "
                             f"holds {current or 'none'}); only the leader's own token is accepted")

    async def check_call(self, metadata, principal: Principal) -> int | None:
        """Apply the rules of the module docstring to one call; returns the token (None: not fenced)."""
        token = token_from_metadata(metadata)
        is_scheduler = principal.is_service(SCHEDULER)
        if token is not None and not is_scheduler:
            self.refused += 1
            raise FencingRefused(grpc.StatusCode.PERMISSION_DENIED,
                                 f"metadata {FENCING_METADATA_KEY} is only for the scheduler service identity: "
                                 "drop it from your call")
        if is_scheduler and token is None:
            raise FencingRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                 f"a scheduler's Refresh must carry {FENCING_METADATA_KEY} (its lease's token)")
        if token is not None:
            await self.check(token)
        return token

    async def enforce(self, context, principal: Principal) -> int | None:
        """For a gRPC handler: abort the call with the refusal's status, or return the token (None: none sent)."""
        try:
            return await self.check_call(context.invocation_metadata(), principal)
        except FencingRefused as exc:
            await context.abort(exc.code, exc.message)
