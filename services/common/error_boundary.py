"""The one place where a failure becomes a gRPC status (issue 16): a server interceptor.

Every service's ``GrpcHost`` installs ``ErrorBoundary`` as its innermost
interceptor. A handler that fails with an exception it did not turn into a
status itself is answered as follows (gRPC status code semantics,
https://grpc.github.io/grpc/core/md_doc_statuscodes.html):

========================================  =====================  ==========================================
exception                                 status                 message (what a person can do)
========================================  =====================  ==========================================
MongoDB timeouts (server selection,       UNAVAILABLE            the store is unreachable: retry; check it
network), lost connections                                       is up
MongoDB command failures                  UNAVAILABLE            the store refused the operation; nothing
(OperationFailure, write errors)                                 was half-applied; retry
MongoDB operation time limit              DEADLINE_EXCEEDED      the store was too slow; retry
Redis connection / timeout errors         UNAVAILABLE            Redis is unreachable
a peer's gRPC error                       the peer's code when   the peer's message (peers have a boundary
                                          retryable, else        too, so it holds no internals)
                                          UNAVAILABLE
``asyncio.TimeoutError``                  DEADLINE_EXCEEDED      not ready in time; retry
``ConnectionError`` / ``OSError``         UNAVAILABLE            a dependency is unreachable
anything else (a bug)                     UNKNOWN                "internal error, reference <id>": the
                                                                 traceback is logged with that id
========================================  =====================  ==========================================

Messages never carry exception class names, server addresses or driver
details; the log line (with the reference id) does. A status a handler set
itself (``context.abort``) passes through untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from dataclasses import dataclass

import grpc
from pymongo import errors as mongo_errors
from redis import exceptions as redis_errors

log = logging.getLogger(__name__)

#: Peer status codes passed on as they are (anything else from a peer becomes UNAVAILABLE).
_PASSED_PEER_CODES = {
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.FAILED_PRECONDITION,
}


#: Sent with every answer (gRFC A6 server pushback): a status one of our servers *answered* is final for
#: the client's channel retry policy, which thus retries only calls no server answered (a peer restarting).
#: Callers still see UNAVAILABLE as retryable and decide themselves.
NO_TRANSPARENT_RETRY = (("grpc-retry-pushback-ms", "-1"),)


#: Statuses after which the same call can succeed later (the peer unreachable, slow, busy, or the call
#: aborted or cancelled): a caller may retry after a backoff; any other status would repeat.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED})


@dataclass(frozen=True, slots=True)
class Failure:
    code: grpc.StatusCode
    message: str


def answered_by_our_server(exc: grpc.RpcError) -> bool:
    """Whether a failed call's status came from one of our servers (it carries the boundary's trailer)
    rather than from the client's transport (no connection, reset, deadline before any answer)."""
    try:
        if exc.code() not in _TRANSPORT_CODES:  # only a server sends these
            return True
        return any(key == NO_TRANSPARENT_RETRY[0][0] for key, _ in exc.trailing_metadata() or ())
    except Exception:  # not a call error
        return False


#: codes a client's own transport produces (no connection, reset, timeout before any answer)
_TRANSPORT_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def peer_message(exc: grpc.RpcError, peer: str) -> str:
    """What to tell a caller about a failed call to ``peer`` (e.g. "meta_fetcher"): the peer's own message
    when it answered (it has a boundary, so no internals), else a plain statement without addresses or
    transport details (those are logged by the caller)."""
    if answered_by_our_server(exc) and exc.details():
        return exc.details()
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{peer} did not answer in time"
    return f"{peer} is unreachable (restarting or down)"


def classify(exc: BaseException) -> Failure | None:
    """The status and message for a dependency failure, or None when ``exc`` is a bug."""
    if isinstance(exc, mongo_errors.ExecutionTimeout):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED,
                       "the insights store did not finish the operation in time; retry shortly")
    if isinstance(exc, (mongo_errors.ConnectionFailure, mongo_errors.ServerSelectionTimeoutError)):
        return Failure(grpc.StatusCode.UNAVAILABLE,
                       "the insights store (MongoDB) is unreachable; retry shortly, and check that it is running")
    if isinstance(exc, mongo_errors.PyMongoError):  # OperationFailure, write errors, failCommand...
        code = getattr(exc, "code", None)
        ref = f" (store error code {code})" if isinstance(code, int) else ""
        return Failure(grpc.StatusCode.UNAVAILABLE,
                       f"the insights store refused the operation{ref}; nothing was half-applied, retry shortly")
    if isinstance(exc, redis_errors.TimeoutError):
        return Failure(grpc.StatusCode.UNAVAILABLE, "Redis did not answer in time; retry shortly")
    if isinstance(exc, redis_errors.RedisError):
        return Failure(grpc.StatusCode.UNAVAILABLE,
                       "Redis (shared locks and budget) is unreachable; retry shortly, and check that it is running")
    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code()
        if code in _PASSED_PEER_CODES and answered_by_our_server(exc):
            return Failure(code, exc.details() or f"a peer service answered {code.name}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Failure(code, "a peer service did not answer in time; retry shortly")
        return Failure(grpc.StatusCode.UNAVAILABLE, "a peer service is unreachable or failed; retry shortly")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "the answer was not ready in time; retry shortly")
    if isinstance(exc, (ConnectionError, OSError)):
        return Failure(grpc.StatusCode.UNAVAILABLE, "a dependency is unreachable; retry shortly")
    return None


async def _answer(exc: Exception, context, method: str):
    """Abort ``context`` with the status for ``exc`` (always raises)."""
    failure = classify(exc)
    if failure is not None:
        log.warning("%s failed: %s -> %s (%s)", method, type(exc).__name__, failure.code.name, exc)
        await context.abort(failure.code, failure.message)
    reference = uuid.uuid4().hex[:12]
    log.error("%s: internal error, reference %s", method, reference, exc_info=exc)
    await context.abort(grpc.StatusCode.UNKNOWN,
                        f"internal error (a bug), reference {reference}: please report it with that reference")


def _passes(exc: BaseException) -> bool:
    """Statuses set by the handler and cancellations are not ours to translate."""
    return isinstance(exc, (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit)) or \
        not isinstance(exc, Exception)


def _wrap_unary(behavior, method: str, timer=None):
    """``timer``: an ``RpcMetrics`` whose ``record`` times the call here, in the same wrapper (no layer of its
    own: on an L1 hit every coroutine layer counts against telemetry's budget)."""
    if timer is not None:
        record, tier = timer.record, timer.tier

        async def timed(request, context):
            started, failed, token = time.perf_counter(), None, tier.set(None)
            context.set_trailing_metadata(NO_TRANSPARENT_RETRY)
            try:
                return await behavior(request, context)
            except BaseException as exc:
                failed = exc
                if _passes(exc):
                    raise
                await _answer(exc, context, method)
            finally:
                record(started, method, context, failed, tier.get())
                tier.reset(token)
        return timed

    async def handler(request, context):
        context.set_trailing_metadata(NO_TRANSPARENT_RETRY)
        try:
            return await behavior(request, context)
        except BaseException as exc:
            if _passes(exc):
                raise
            await _answer(exc, context, method)
    return handler


def _wrap_stream(behavior, method: str, timer=None):
    if inspect.isasyncgenfunction(behavior):
        record = timer.record if timer is not None else None

        async def handler(request, context):
            started, failed = time.perf_counter(), None
            context.set_trailing_metadata(NO_TRANSPARENT_RETRY)
            try:
                async for item in behavior(request, context):
                    yield item
            except BaseException as exc:
                failed = exc
                if _passes(exc):
                    raise
                await _answer(exc, context, method)
            finally:
                if record is not None:  # a stream is timed to its end
                    record(started, method, context, failed, None)
        return handler
    return _wrap_unary(behavior, method, timer)  # a coroutine that writes with context.write


class ErrorBoundary(grpc.aio.ServerInterceptor):
    """Turns dependency failures into UNAVAILABLE / DEADLINE_EXCEEDED and bugs into a clean UNKNOWN."""

    def __init__(self, timer=None) -> None:
        """``timer``: an ``RpcMetrics`` (services/common/telemetry.py) timing every call but health checks and
        reflection, inside this boundary's own wrapper; None: calls are not timed here."""
        self._wrapped: dict[str, tuple[object, object]] = {}  # method -> (handler, its wrapped handler)
        self.timer = timer

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:  # the usual case: wrap once per method
            return known[1]
        timer = self.timer if self.timer is not None and self.timer.times(method) else None
        wrapped = self._wrap(handler, method, timer)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @staticmethod
    def _wrap(handler, method: str, timer=None):
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, timer), handler.request_deserializer,
                handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, timer), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method, timer), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, method, timer), handler.request_deserializer,
                handler.response_serializer)
        return handler
