"""Undecodable request bytes end as INVALID_ARGUMENT, not UNKNOWN with a traceback (issue 15).

grpc.aio decodes a request before any handler runs, and a protobuf
``DecodeError`` there becomes ``UNKNOWN`` with the exception in the log.
``DecodeGuard`` (every ``GrpcHost`` installs it, outermost) wraps each
method's deserializer: bytes that do not parse become a marker, and the call is
answered ``INVALID_ARGUMENT`` ("the request is not a valid <message type>")
before the handler runs; nothing is logged beyond one debug line.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import DecodeError

from services.common.handler_wrapping import guarded, kind_of, rebuild

log = logging.getLogger(__name__)


class _Undecodable:
    __slots__ = ("type_name",)

    def __init__(self, type_name: str):
        self.type_name = type_name


def _type_name(deserializer) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "") or "request message"


def _safe(deserializer):
    type_name = _type_name(deserializer)

    def decode(raw: bytes):
        try:
            return deserializer(raw)
        except (DecodeError, ValueError, TypeError, UnicodeDecodeError, RuntimeWarning):
            return _Undecodable(type_name)
    return decode


async def _refuse_undecodable(request, context) -> None:
    if isinstance(request, _Undecodable):
        log.debug("undecodable %s refused", request.type_name)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request bytes are not a valid {request.type_name} message: send that message "
                            "type, encoded with protobuf")


class DecodeGuard(grpc.aio.ServerInterceptor):
    """INVALID_ARGUMENT for request bytes that do not decode (module docstring)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[object, object]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:  # the usual case: wrapped once per method
            return known[1]
        if handler is None or handler.request_deserializer is None or kind_of(handler).startswith("stream_"):
            return handler
        wrapped = rebuild(handler, lambda behavior, is_stream: guarded(behavior, is_stream, _refuse_undecodable),
                          _safe(handler.request_deserializer))
        self._wrapped[method] = (handler, wrapped)
        return wrapped
