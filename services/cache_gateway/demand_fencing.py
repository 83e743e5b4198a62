"""Fencing of the scheduler's refreshes (DESIGN.md R6: exactly one active scheduler).

The scheduler leader holds a lease in Redis (``services/scheduler/leader_lease.py``);
each acquisition takes a new *fencing token* from ``INCR <lease_key>:fence``.
It sends that token with every Refresh in gRPC metadata ``x-fencing-token``.
A leader that was paused past its lease (GC, network partition) and wakes up
still believing it leads carries an older token than the new leader, so the
gateway refuses its refreshes:

    fencing = FencingCheck(redis_client, lease_key_for(prefix))   # once, at start-up
    ...
    await fencing.enforce(context)    # in Refresh, after authorisation

Rule (one atomic Lua script, so two gateway replicas agree): a token is
refused (FAILED_PRECONDITION) when it is lower than the highest token seen
so far, that is the larger of the lease's issued counter ``<lease_key>:fence``
and ``<lease_key>:fence_seen`` (raised by every accepted token). Requests with
no token (people, the gateway's own on-demand reads) are not fenced. A token
that is not a positive integer is INVALID_ARGUMENT.

Without Redis (``REDIS_URL`` unset: one machine, one gateway) the highest token
seen is kept in process.

The check runs when the Refresh starts; a leader deposed *during* a refresh
finishes that one refresh. That is harmless: L2 writes are idempotent and
guarded by ``fetched_at`` (l2_store.py), and the next refresh it sends is refused.
"""

from __future__ import annotations

import grpc
from services.cache_gateway import metrics

#: gRPC metadata key carrying the scheduler's fencing token (decimal integer).
FENCING_METADATA_KEY = "x-fencing-token"

_CHECK = """
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
local issued = tonumber(redis.call('GET', KEYS[1]) or '0')
local highest = math.max(seen, issued)
local token = tonumber(ARGV[1])
if token < highest then
  return {0, highest}
end
if token > seen then
  redis.call('SET', KEYS[2], ARGV[1])
end
return {1, highest}
"""


def lease_key_for(redis_key_prefix: str = "adfatigue:") -> str:
    """The scheduler's lease key for a deployment's ``REDIS_KEY_PREFIX`` (default ``adfatigue:scheduler:leader``)."""
    return f"{redis_key_prefix}scheduler:leader"


class FencingRefused(Exception):
    """A refresh carried a stale or malformed token; ``code`` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def token_from_metadata(metadata) -> int | None:
    """The fencing token of a call's invocation metadata (None when absent).

    Raises FencingRefused(INVALID_ARGUMENT) when present but not a positive integer.
    """
    raw = next((v for k, v in (metadata or ()) if k == FENCING_METADATA_KEY), None)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    try:
        token = int(str(raw).strip())
    except ValueError:
        token = 0
    if token < 1:
        raise FencingRefused(grpc.StatusCode.INVALID_ARGUMENT,
                             f"metadata {FENCING_METADATA_KEY} must be a positive integer "
                             "(the scheduler's fencing token)")
    return token


class FencingCheck:
    """Refuses tokens lower than the highest seen. ``redis_client``: a ``redis.asyncio`` client or None."""

    def __init__(self, redis_client=None, lease_key: str = lease_key_for()):
        self.redis = redis_client
        self.lease_key = lease_key
        self.keys = [f"{lease_key}:fence", f"{lease_key}:fence_seen"]
        self._highest_local = 0
        self.refused = 0

    async def check(self, token: int) -> None:
        """Accept ``token`` (raising the highest seen) or raise FencingRefused(FAILED_PRECONDITION)."""
        if self.redis is None:
            highest = self._highest_local
            ok = token >= highest
            if ok:
                self._highest_local = token
        else:
            ok, highest = await self.redis.eval(_CHECK, 2, *self.keys, token)
            ok, highest = bool(int(ok)), int(highest)
        if not ok:
            self.refused += 1
            metrics.refresh_fenced.add(1)
            raise FencingRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                 f"refresh refused: fencing token {token} is older than {highest}; "
                                 "this scheduler is no longer the leader")

    async def check_metadata(self, metadata) -> int | None:
        """Check the token of ``metadata`` if it carries one; returns it (None: not fenced)."""
        token = token_from_metadata(metadata)
        if token is not None:
            await self.check(token)
        return token

    async def enforce(self, context) -> int | None:
        """For a gRPC handler: abort the call with the refusal's status, or return the token (None: none sent)."""
        try:
            return await self.check_metadata(context.invocation_metadata())
        except FencingRefused as exc:
            await context.abort(exc.code, exc.message)
