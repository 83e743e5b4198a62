"""Issue 14's measurements: what serving from memory costs against bare grpc.aio, and under mixed load.

All against gateway replica B (production time settings), data already cached:

- ``echo``: the same GetInsights (last 7 days, every field) sent ``n`` times one after another,
  alternately in blocks of 50 to the gateway (verified L1 hits by GetStats) and to
  ``bench/bare_server.py`` answering the gateway's own reply bytes for the same request bytes
  (no token check, no decoding) — same client code path and channel layout. Target: L1-hit
  p50 and p99 ≤ 1.3× the echo's.
- ``custom_range_page``: page loads of the real sample account (55 ads, 1,716 rows) with a random
  end date (the 8 widgets: GetInsights and GetFatigue for 7 / 14 / 28 days and lifetime ending
  that day, sent at once); every range new to the gateway (no memoised answer), every day of the
  account in L2. The same pages are then played against the bare server loaded with the gateway's
  reply bytes. Also counted: L2 reads (``GetStats.l2_reads``) per page load, which is 0 when the
  account's replica answers.
- ``steady_pages``: the day's page (8 widgets) of warm accounts again, L2 reads per page load.
- ``mixed_load``: ``callers`` closed-loop unary callers (random widgets of the warm accounts) +
  ``streams`` open Subscribe streams + one write per second (a restatement, then an operator's
  forced Refresh of that day) for ``seconds``; unary latency percentiles and errors, the
  gateway's RSS before, right after, and after ``idle_s`` idle. Targets: p99 ≤ 100 ms,
  0 errors, RSS back within 10 % of its pre-load value.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import date, timedelta

import grpc
import httpx

from bench.accounts import RESTATE_LEADS, BenchAccount
from bench.bare_server import store as bare_store
from bench.common import GatewayClient, percentiles, proc_memory, stats_delta
from bench.workload import WIDGETS, method_name, page_ranges, widget_request
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw

RANGE_DAYS = (7, 14, 28)


def custom_page(account: BenchAccount, until: date) -> list[tuple[str, object]]:
    """The 8 widget requests of a page whose ranges end ``until``."""
    out = []
    for n in RANGE_DAYS:
        since = max(account.first_day, until - timedelta(days=n - 1)).isoformat()
        out += [(kind, widget_request(kind, account.account_id, since, until.isoformat()))
                for kind in ("insights", "fatigue")]
    out += [(kind, widget_request(kind, account.account_id, account.first_day.isoformat(), until.isoformat()))
            for kind in ("insights", "fatigue")]
    return out


async def _page(client: GatewayClient, md, page, timeout_s: float = 120.0) -> tuple[float, list[bytes]]:
    t = time.perf_counter()
    answers = await asyncio.gather(*(client.method(method_name(kind))(req, metadata=md, timeout=timeout_s)
                                     for kind, req in page))
    return time.perf_counter() - t, list(answers)


async def echo(gateway: str, bare: str, md, account: BenchAccount, n: int = 2000, block: int = 50) -> dict:
    since, until = page_ranges(account)["7d"]
    request = widget_request("insights", account.account_id, since, until)
    gw_client, bare_client = GatewayClient(gateway, 1), GatewayClient(bare, 1)
    try:
        reply = await gw_client.method("GetInsights")(request, metadata=md, timeout=120)  # warm L1
        await bare_store(bare, {request.SerializeToString(): reply})
        await bare_client.method("GetInsights")(request, metadata=md, timeout=30)
        times: dict[str, list[float]] = {"gateway": [], "bare": []}
        before = await gw_client.stats(md)
        for i in range(0, n, block):
            for name, client in (("gateway", gw_client), ("bare", bare_client)):
                call = client.method("GetInsights")
                for _ in range(min(block, n - i)):
                    t = time.perf_counter()
                    await call(request, metadata=md, timeout=30)
                    times[name].append(time.perf_counter() - t)
        delta = stats_delta(await gw_client.stats(md), before)
        gateway_p, bare_p = percentiles(times["gateway"]), percentiles(times["bare"])
        return {"gateway_l1_ms": gateway_p, "bare_echo_ms": bare_p, "verified_l1_hits": delta["l1_hits"],
                "reply_bytes": len(reply),
                "ratio_p50": gateway_p["p50"] / bare_p["p50"], "ratio_p99": gateway_p["p99"] / bare_p["p99"],
                "method": f"{n} identical GetInsights 7d per contender, one at a time, alternating blocks of {block}, "
                          "one channel each; bare = bench/bare_server.py answering the gateway's reply bytes"}
    finally:
        await gw_client.close()
        await bare_client.close()


async def custom_range_page(gateway: str, bare: str, md, account: BenchAccount, pages: int = 40,
                            seed: int = 14) -> dict:
    rng = random.Random(seed)
    span = (account.last_day - account.first_day).days
    gw_client, bare_client = GatewayClient(gateway, 4), GatewayClient(bare, 4)
    try:
        # cold start (not measured): the account is fetched from Meta and its replica follows the change feed
        await _page(gw_client, md, custom_page(account, account.last_day))
        # until a range never asked before is answered without an L2 read: the replica is resident and its load
        # finished (the same range again would be a memoised answer and prove nothing; a load still reading its
        # last batches had put an L2 read into the measured window, seen under CI load)
        warmed: set[int] = set()  # end-day offsets asked while warming: left out of the measured pages
        for i in range(50):
            before = await gw_client.stats(md)
            warmed.add(span - 1 - i)
            await _page(gw_client, md, custom_page(account, account.first_day + timedelta(days=span - 1 - i)))
            if stats_delta(await gw_client.stats(md), before)["l2_reads"] == 0:
                break
            await asyncio.sleep(0.2)
        candidates = [offset for offset in range(28, span) if offset not in warmed]
        ends = rng.sample(candidates, min(pages, len(candidates)))
        before = await gw_client.stats(md)
        gateway_s, recorded = [], {}
        for offset in ends:
            page = custom_page(account, account.first_day + timedelta(days=offset))
            took, answers = await _page(gw_client, md, page)
            gateway_s.append(took)
            recorded.update({req.SerializeToString(): a for (_, req), a in zip(page, answers)})
        delta = stats_delta(await gw_client.stats(md), before)
        await bare_store(bare, recorded)
        bare_s = []
        for offset in ends:
            took, _ = await _page(bare_client, md, custom_page(account, account.first_day + timedelta(days=offset)))
            bare_s.append(took)
        g, b = percentiles(gateway_s), percentiles(bare_s)
        return {"gateway_page_ms": g, "bare_page_ms": b, "ratio_p50": g["p50"] / b["p50"],
                "ratio_p99": g["p99"] / b["p99"], "pages": len(ends), "stats_delta": delta,
                "l2_reads_per_page_load": delta["l2_reads"] / max(1, len(ends)),
                "page_bytes": sum(len(v) for v in recorded.values()) / max(1, len(ends)),
                "account": account.account_id, "rows": account.rows,
                "method": "page loads of the real sample account with a random end date (8 widgets at once: "
                          "GetInsights + GetFatigue for 7/14/28 days and lifetime ending that day), each range new "
                          "to the gateway; then the same pages against the bare server holding the gateway's "
                          "reply bytes"}
    finally:
        await gw_client.close()
        await bare_client.close()


async def small_while_large(gateway: str, md, small_account: BenchAccount, large_account: BenchAccount,
                            seconds: float = 5.0, seed: int = 21) -> dict:
    """Small requests (L1-hit GetInsights 7d, one at a time) alone, then while 4 tasks keep asking for large
    answers (lifetime GetInsights and GetFatigue of the real sample account, a new end date each: never memoised);
    p99 of the small ones both ways."""
    since, until = page_ranges(small_account)["7d"]
    small = widget_request("insights", small_account.account_id, since, until)
    client = GatewayClient(gateway, 4)
    rng = random.Random(seed)
    span = (large_account.last_day - large_account.first_day).days
    try:
        await client.method("GetInsights")(small, metadata=md, timeout=60)

        async def smalls(stop_at: float) -> list[float]:
            out = []
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                await client.method("GetInsights")(small, metadata=md, timeout=60)
                out.append(time.perf_counter() - t)
            return out

        alone = await smalls(time.perf_counter() + seconds)
        stop_at = time.perf_counter() + seconds
        large_done = 0

        async def large() -> None:
            nonlocal large_done
            while time.perf_counter() < stop_at:
                until_day = large_account.first_day + timedelta(days=rng.randint(28, span))
                kind = rng.choice(("insights", "fatigue"))
                req = widget_request(kind, large_account.account_id, large_account.first_day.isoformat(),
                                     until_day.isoformat())
                await client.method(method_name(kind))(req, metadata=md, timeout=120)
                large_done += 1

        larges = [asyncio.ensure_future(large()) for _ in range(4)]
        loaded = await smalls(stop_at)
        await asyncio.gather(*larges)
        a, b = percentiles(alone), percentiles(loaded)
        return {"alone_ms": a, "with_large_ms": b, "large_answers": large_done,
                "p99_ratio": b["p99"] / a["p99"] if a.get("p99") else None,
                "method": f"L1-hit GetInsights 7d one at a time for {seconds:g} s alone, then {seconds:g} s while 4 "
                          "tasks ask lifetime GetInsights/GetFatigue of the real sample account with new end dates"}
    finally:
        await client.close()


async def steady_pages(gateway: str, md, accounts: list[BenchAccount], rounds: int = 3) -> dict:
    client = GatewayClient(gateway, 4)
    try:
        pages = [[(kind, widget_request(kind, a.account_id, *page_ranges(a)[r])) for kind, r in WIDGETS]
                 for a in accounts]
        for page in pages:
            await _page(client, md, page)
        before = await client.stats(md)
        took = []
        for _ in range(rounds):
            for page in pages:
                took.append((await _page(client, md, page))[0])
        delta = stats_delta(await client.stats(md), before)
        return {"page_loads": len(took), "page_ms": percentiles(took), "stats_delta": delta,
                "l2_reads_per_page_load": delta["l2_reads"] / max(1, len(took)),
                "method": f"the day's page (8 widgets) of {len(accounts)} warm accounts, {rounds} rounds, "
                          "L2 read commands counted by the gateway (GetStats.l2_reads)"}
    finally:
        await client.close()


async def mixed_load(system, gateway_name: str, md, accounts: list[BenchAccount], *, seconds: float = 60.0,
                     callers: int = 50, streams: int = 200, idle_s: float = 60.0, seed: int = 7) -> dict:
    address = system.address(gateway_name)
    pid = system.pid(gateway_name)
    client = GatewayClient(address, 4)
    keys = [(kind, widget_request(kind, a.account_id, *page_ranges(a)[r])) for a in accounts for kind, r in WIDGETS]
    try:
        await asyncio.gather(*(client.method(method_name(kind))(req, metadata=md, timeout=120) for kind, req in keys))
        await asyncio.sleep(2.0)
        rss_before = proc_memory(pid).get("VmRSS", 0)
        before = await client.stats(md)
        stop = asyncio.Event()
        latencies: list[float] = []
        errors: dict[str, int] = {}
        events = 0

        async def subscriber(i: int) -> None:
            nonlocal events
            account = accounts[i % len(accounts)]
            since, until = page_ranges(account)["28d"]
            call = client.method("Subscribe")(gw.SubscribeRequest(account_id=account.account_id, since=since,
                                                                  until=until), metadata=md)
            try:
                async for _ in call:
                    events += 1
            except grpc.aio.AioRpcError as exc:
                if not stop.is_set():
                    errors[f"Subscribe {exc.code().name}"] = errors.get(f"Subscribe {exc.code().name}", 0) + 1

        async def caller(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while not stop.is_set():
                kind, req = rng.choice(keys)
                t = time.perf_counter()
                try:
                    await client.method(method_name(kind))(req, metadata=md, timeout=30)
                    latencies.append(time.perf_counter() - t)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1

        async def writer() -> int:
            rng, writes = random.Random(seed), 0
            async with httpx.AsyncClient() as http:
                while not stop.is_set():
                    t = time.perf_counter()
                    account = rng.choice(accounts)
                    day = (account.last_day - timedelta(days=rng.randint(1, 26))).isoformat()
                    try:
                        await system.restate(http, account.account_id, day, RESTATE_LEADS)
                        await client.method("Refresh")(gw.RefreshRequest(account_id=account.account_id, since=day,
                                                                         until=day, force=True),
                                                       metadata=system.operator_md, timeout=30)
                        writes += 1
                    except (grpc.aio.AioRpcError, httpx.HTTPError) as exc:
                        name = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
                        errors[f"write {name}"] = errors.get(f"write {name}", 0) + 1
                    await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))
            return writes

        subs = [asyncio.ensure_future(subscriber(i)) for i in range(streams)]
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(caller(i)) for i in range(callers)]
        write_task = asyncio.ensure_future(writer())
        await asyncio.sleep(seconds)
        stop.set()
        wall = time.perf_counter() - t0
        await asyncio.gather(*tasks, return_exceptions=True)
        writes = await write_task
        for task in subs:
            task.cancel()
        await asyncio.gather(*subs, return_exceptions=True)
        delta = stats_delta(await client.stats(md), before)
        rss_after = proc_memory(pid).get("VmRSS", 0)
        await asyncio.sleep(idle_s)
        rss_idle = proc_memory(pid).get("VmRSS", 0)
        return {"callers": callers, "streams": streams, "seconds": wall, "writes": writes,
                "unary_ms": percentiles(latencies), "unary_per_s": len(latencies) / wall, "errors": errors,
                "stream_events": events, "stats_delta": delta,
                "rss_before": rss_before, "rss_after_load": rss_after, "rss_after_idle": rss_idle,
                "rss_idle_vs_before": rss_idle / rss_before if rss_before else None, "idle_s": idle_s,
                "method": f"{callers} closed-loop callers (random widgets of {len(accounts)} warm accounts) + "
                          f"{streams} Subscribe streams (last 28 days) + 1 write/s (restatement + forced Refresh) "
                          f"for {seconds:g} s on one gateway replica; RSS from /proc before, after, and after "
                          f"{idle_s:g} s idle"}
    finally:
        await client.close()
