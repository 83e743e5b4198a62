"""The bare contenders of issue 14: a grpc.aio server with no application work, answering with bytes.

``python -m bench.bare_server --port 0`` serves, under the CacheGateway's own
method paths (so one client code path and channel layout drives both), unary
``GetInsights`` and ``GetFatigue`` that look the request bytes up in a dict and
answer the stored bytes untouched — no token check, no decoding. ``bench.Bare/Put``
(request: 4-byte big-endian key length, key, value) stores an answer. Used as:

- the *echo*: the same GetInsights request an L1 hit answers, answered with the
  gateway's own reply bytes — what any Python grpc.aio server on this machine
  needs for that round trip (the L1-hit target is ≤ 1.3× this);
- the *bare-bytes page*: the 8 widget answers of a custom-range page, recorded
  from the gateway, served back (the custom-range page target is a small multiple
  of this).
"""

from __future__ import annotations

import argparse
import asyncio
import struct

import grpc

GATEWAY = "adfatigue.v1.CacheGateway"
BARE = "bench.Bare"


class Bare:
    def __init__(self):
        self.answers: dict[bytes, bytes] = {}

    async def put(self, request: bytes, context) -> bytes:
        (n,) = struct.unpack("!I", request[:4])
        self.answers[request[4:4 + n]] = request[4 + n:]
        return b""

    async def get(self, request: bytes, context) -> bytes:
        answer = self.answers.get(request)
        if answer is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no answer stored for these request bytes")
        return answer


def put_request(key: bytes, value: bytes) -> bytes:
    return struct.pack("!I", len(key)) + key + value


async def serve(port: int) -> None:
    bare = Bare()
    server = grpc.aio.server()
    get = grpc.unary_unary_rpc_method_handler(bare.get)
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(GATEWAY, {"GetInsights": get, "GetFatigue": get}),
        grpc.method_handlers_generic_handler(BARE, {"Put": grpc.unary_unary_rpc_method_handler(bare.put)}),
    ))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"bare_server listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


async def store(address: str, answers: dict[bytes, bytes]) -> None:
    """Store ``request bytes -> answer bytes`` in the bare server at ``address``."""
    async with grpc.aio.insecure_channel(address) as channel:
        put = channel.unary_unary(f"/{BARE}/Put")
        for key, value in answers.items():
            await put(put_request(key, value), timeout=30)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare_server")
    p.add_argument("--port", type=int, default=0)
    asyncio.run(serve(p.parse_args(argv).port))


if __name__ == "__main__":
    main()
