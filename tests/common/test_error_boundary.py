"""The error boundary over a real gRPC server on loopback: dependency failures become UNAVAILABLE or
DEADLINE_EXCEEDED with a message free of internals; only a bug is UNKNOWN, with a reference id."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
from pymongo import errors as mongo_errors
from redis import exceptions as redis_errors

from services.common.embedded_mongo import free_port
from services.common.grpc_server import GrpcHost, insecure_channel

SERVICE = "test.Faults"


def _failure(kind: str) -> BaseException:
    return {
        "mongo_down": mongo_errors.ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused"),
        "mongo_reset": mongo_errors.AutoReconnect("connection closed"),
        "mongo_failcommand": mongo_errors.OperationFailure(
            "Failing command via 'failCommand' failpoint", 91, {"ok": 0, "errmsg": "secret", "code": 91}),
        "mongo_write": mongo_errors.WriteError("E11000 duplicate key", 11000, {}),
        "mongo_slow": mongo_errors.ExecutionTimeout("operation exceeded time limit", 50),
        "redis_down": redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        "redis_slow": redis_errors.TimeoutError("Timeout reading from socket"),
        "timeout": asyncio.TimeoutError(),
        "refused": ConnectionRefusedError(111, "Connection refused"),
        "bug": KeyError("row"),
    }[kind]


EXPECTED = {
    "mongo_down": grpc.StatusCode.UNAVAILABLE, "mongo_reset": grpc.StatusCode.UNAVAILABLE,
    "mongo_failcommand": grpc.StatusCode.UNAVAILABLE, "mongo_write": grpc.StatusCode.UNAVAILABLE,
    "mongo_slow": grpc.StatusCode.DEADLINE_EXCEEDED, "redis_down": grpc.StatusCode.UNAVAILABLE,
    "redis_slow": grpc.StatusCode.UNAVAILABLE, "timeout": grpc.StatusCode.DEADLINE_EXCEEDED,
    "refused": grpc.StatusCode.UNAVAILABLE, "bug": grpc.StatusCode.UNKNOWN,
}
INTERNALS = re.compile(r"class|Error\b|Exception|Traceback|127\.0\.0\.1|failCommand|errmsg|secret|E11000|Errno")


@pytest.fixture
async def faulty_server():
    calls = {"n": 0}

    async def unary(request: bytes, context) -> bytes:
        kind = request.decode()
        if kind == "abort":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "since must be a date")
        if kind == "ok":
            return b"fine"
        raise _failure(kind)

    async def stream(request: bytes, context):
        yield b"first"
        raise _failure(request.decode())

    async def flaky(request: bytes, context) -> bytes:
        calls["n"] += 1
        if calls["n"] == 1:  # a peer that is restarting: the first attempt fails
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return b"second attempt"

    ident = dict(request_deserializer=None, response_serializer=None)
    handlers = {"Unary": grpc.unary_unary_rpc_method_handler(unary, **ident),
                "Stream": grpc.unary_stream_rpc_method_handler(stream, **ident),
                "Flaky": grpc.unary_unary_rpc_method_handler(flaky, **ident)}
    host = GrpcHost("127.0.0.1:0")
    host.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = await host.start([SERVICE])
    channel = insecure_channel(f"127.0.0.1:{port}")
    yield channel, calls
    await channel.close()
    await host.stop(0)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_unary_failures_become_clear_statuses(faulty_server, kind):
    channel, _ = faulty_server
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{SERVICE}/Unary")(kind.encode(), timeout=10)
    assert caught.value.code() == EXPECTED[kind]
    details = caught.value.details()
    assert details and not INTERNALS.search(details), details
    if kind == "bug":
        assert re.search(r"reference [0-9a-f]{12}", details)
    else:
        assert "retry" in details


@pytest.mark.parametrize("kind", ["mongo_down", "redis_down", "bug"])
async def test_stream_failures_after_the_first_event(faulty_server, kind):
    channel, _ = faulty_server
    call = channel.unary_stream(f"/{SERVICE}/Stream")(kind.encode(), timeout=10)
    assert await call.read() == b"first"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == EXPECTED[kind]
    assert not INTERNALS.search(caught.value.details())


async def test_statuses_set_by_the_handler_pass_untouched(faulty_server):
    channel, _ = faulty_server
    assert await channel.unary_unary(f"/{SERVICE}/Unary")(b"ok", timeout=10) == b"fine"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{SERVICE}/Unary")(b"abort", timeout=10)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "since must be a date")


async def test_an_answered_unavailable_is_not_retried_by_the_channel(faulty_server):
    """Server pushback: what our server answered is final; the caller decides whether to retry."""
    channel, calls = faulty_server
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{SERVICE}/Flaky")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and calls["n"] == 1


async def test_a_call_sent_while_the_peer_restarts_succeeds():
    """The channel's retry policy covers a peer that is down for a moment (no server answered)."""
    async def ok(request: bytes, context) -> bytes:
        return b"up"

    def server() -> GrpcHost:
        host = GrpcHost(f"127.0.0.1:{port}")
        host.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(ok)}),))
        return host

    port = free_port()
    first = server()
    await first.start([SERVICE])
    async with insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(f"/{SERVICE}/Unary")
        assert await call(b"", timeout=10) == b"up"
        await first.stop(0)  # the peer goes away ...
        second = server()

        async def come_back():
            await asyncio.sleep(0.3)  # ... and is back a moment later on the same port
            await second.start([SERVICE])

        returning = asyncio.create_task(come_back())
        try:
            assert await call(b"", timeout=10) == b"up"  # sent while it was down: retried, not failed
        finally:
            await returning
            await second.stop(0)
