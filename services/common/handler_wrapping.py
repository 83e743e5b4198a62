"""Rebuilding a gRPC method handler around a new behaviour (for server interceptors).

``rebuild(handler, wrap, deserializer)``: the same kind of handler (unary or
streaming) whose behaviour is ``wrap(behaviour, is_stream)`` and whose request
deserializer is ``deserializer`` (default: the handler's own).
"""

from __future__ import annotations

import inspect
from typing import Callable

import grpc

_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def kind_of(handler) -> str:
    return next(k for k in _FACTORIES if getattr(handler, k, None) is not None)


def rebuild(handler, wrap: Callable, deserializer=None):
    kind = kind_of(handler)
    return _FACTORIES[kind](wrap(getattr(handler, kind), kind.endswith("_stream")),
                            deserializer or handler.request_deserializer, handler.response_serializer)


def guarded(behavior, is_stream: bool, check: Callable):
    """``behavior`` preceded by ``await check(request, context)`` (which may abort the call)."""
    if is_stream and inspect.isasyncgenfunction(behavior):
        async def stream(request, context):
            await check(request, context)
            async for item in behavior(request, context):
                yield item
        return stream

    async def unary(request, context):
        await check(request, context)
        return await behavior(request, context)
    return unary


def refusing(handler, code: grpc.StatusCode, message: str):
    """A handler of the same kind that answers every call with ``code`` and ``message``."""
    async def abort(request, context):
        await context.abort(code, message)
    return rebuild(handler, lambda behavior, is_stream: guarded(behavior, is_stream, abort))
