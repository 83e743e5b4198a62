"""The transport floor for the subscriber benchmark: Python grpc.aio fan-out with no application work.

``python -m bench.fanout_floor --port 0`` serves ``bench.Fanout/Subscribe``
(server-streaming: one small first message, then every broadcast) and
``bench.Fanout/Broadcast`` (unary: the request bytes are pushed to every open
stream, prefixed with the server's wall time at the start of the fan-out).
``measure_floor`` opens the same number of streams over the same number of
processes and channels as the subscriber benchmark, from the same client code
path, and reports receipt − fan-out start: what any Python grpc.aio server
on this machine needs to push one message to that many streams (the part of
the gateway's number that is not the gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time

import grpc

from bench.common import percentiles

SERVICE = "bench.Fanout"


class Fanout:
    def __init__(self):
        self.queues: set[asyncio.Queue] = set()

    async def subscribe(self, request: bytes, context):
        queue: asyncio.Queue = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield b"ready"
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)

    async def broadcast(self, request: bytes, context) -> bytes:
        message = struct.pack("!d", time.time()) + request
        for queue in list(self.queues):
            queue.put_nowait(message)
        return struct.pack("!I", len(self.queues))


async def serve(port: int) -> None:
    fan = Fanout()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Subscribe": grpc.unary_stream_rpc_method_handler(fan.subscribe),
        "Broadcast": grpc.unary_unary_rpc_method_handler(fan.broadcast),
    }),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"fanout_floor listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


async def measure_floor(addresses: list[str], streams: int, rounds: int = 5, message_bytes: int = 2000,
                        channels: int = 4) -> dict:
    chans = [grpc.aio.insecure_channel(a, options=[("grpc.use_local_subchannel_pool", 1), ("bench.channel", i)])
             for a in addresses for i in range(channels)]
    receipts: list[list[tuple[float, bytes]]] = [[] for _ in range(streams)]

    async def read(i: int) -> None:
        call = chans[i % len(chans)].unary_stream(f"/{SERVICE}/Subscribe")(b"")
        try:
            async for message in call:
                receipts[i].append((time.time(), message))
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass

    tasks = [asyncio.ensure_future(read(i)) for i in range(streams)]
    try:
        deadline = time.monotonic() + 60
        while not all(receipts) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        latencies = []
        payload = b"x" * message_bytes
        for _ in range(rounds):
            marks = [len(r) for r in receipts]
            for a in range(len(addresses)):
                await chans[a * channels].unary_unary(f"/{SERVICE}/Broadcast")(payload)
            deadline = time.monotonic() + 30
            while any(len(r) <= m for r, m in zip(receipts, marks)) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            for r, m in zip(receipts, marks):
                for t, message in r[m:m + 1]:
                    latencies.append(t - struct.unpack("!d", message[:8])[0])
            await asyncio.sleep(0.2)
        return {**percentiles(latencies), "streams": streams, "servers": len(addresses), "rounds": rounds,
                "message_bytes": message_bytes,
                "method": "receipt - server wall time at the start of the fan-out; bare grpc.aio servers, "
                          "pre-serialized bytes, same client code path and channel layout"}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in chans:
            await ch.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fanout_floor")
    p.add_argument("--port", type=int, default=0)
    asyncio.run(serve(p.parse_args(argv).port))


if __name__ == "__main__":
    main()
