"""Page benchmarks of /ad-fatigue in Chromium over loopback (issue 12).

1. **Page load until every widget has rendered**: a fresh browser context per load (no HTTP
   cache, like a first visit), from navigation start to the moment the summary, the 55-row
   table, the trend charts, the freshness banner and the live indicator all show the same
   version and the live stream is connected. Baseline in the same run: the page model alone
   fetched by the same browser (`fetch()` of GET /api/v1/accounts/{act}/fatigue).
2. **Change -> DOM updated with N open pages** (default 100, 5 pages per browser context so
   Chromium's 6 connections per host and profile never queue a stream): a restatement at the
   sandbox, a forced Refresh of that day through the BFF, then every page's version element is
   watched by a MutationObserver; latency = DOM updated - Refresh answered. Baseline: the same
   with one open page.

    .venv/bin/python -m bench.page [--loads 30] [--pages 100] [--changes 10]

Real data (the sample account, 55 ads x 180 days); Debian's chromium (/usr/bin/chromium);
results in bench/results/page.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlencode

import httpx
from playwright.sync_api import sync_playwright

from bench.common import machine_busy_seconds, percentiles
from services.cli.local_system import LocalSystem, SystemConfig
from services.cli.web_build import ensure_page_built

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "data" / "meta_ads_daily_account_a.csv"
ACCOUNT, SINCE, UNTIL = "act_1001", "2025-11-01", "2026-04-29"
QUERY = "?" + urlencode({"account": ACCOUNT, "since": SINCE, "until": UNTIL})
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RENDERED = """() => {
  const ws = [...document.querySelectorAll('[data-widget]')];
  const conn = document.querySelector('[data-testid=connection]');
  if (ws.length < 5 || !conn || conn.textContent !== 'connected') return false;
  if (document.querySelectorAll('tbody tr').length !== 55) return false;
  if (document.querySelectorAll('.trends svg').length < 2) return false;
  if (new Set(ws.map(w => w.dataset.version)).size !== 1) return false;
  return performance.now();
}"""
WATCH = """() => {
  window.__changes = [];
  const el = document.querySelector('[data-testid=version]');
  new MutationObserver(() => window.__changes.push([el.textContent, performance.timeOrigin + performance.now()]))
    .observe(el, {childList: true, characterData: true, subtree: true});
}"""


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    return {"cpu": cpu, "nproc": os.cpu_count(), "python": platform.python_version(),
            "chromium": subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True,
                                       text=True).stdout.strip()}


class Bench:
    def __init__(self, system: LocalSystem, browser):
        self.system = system
        self.browser = browser
        self.base = f"http://{system.processes['bff'].address}"

    def context(self):
        ctx = self.browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.goto(self.system.sign_in_link("bench", ["*"], ["operator"], next_path="/ad-fatigue" + QUERY))
        page.wait_for_function(RENDERED, timeout=120_000)
        return ctx, page

    def page_load(self) -> tuple[float, float]:
        ctx = self.browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            # sign in first (sets the cookie), then measure a plain navigation to the page
            link = self.system.sign_in_link("bench", ["*"], ["operator"], next_path="/ad-fatigue/sign-in-done")
            page.request.get(link, max_redirects=0)
            page.goto(self.base + "/ad-fatigue" + QUERY, wait_until="commit")
            rendered = page.wait_for_function(RENDERED, timeout=120_000, polling="raf").json_value()
            model = page.evaluate("""async (url) => { const t = performance.now(); const r = await fetch(url);
                                     await r.json(); return performance.now() - t; }""",
                                  f"/api/v1/accounts/{ACCOUNT}/fatigue?since={SINCE}&until={UNTIL}")
            return rendered / 1000, model / 1000
        finally:
            ctx.close()

    def top_ad(self) -> tuple[str, str, float]:
        with httpx.Client(base_url=self.base, timeout=120) as c:
            c.get(self.system.sign_in_link("bench-reader", ["*"], []).removeprefix(self.base))
            model = c.get(f"/api/v1/accounts/{ACCOUNT}/fatigue", params={"since": SINCE, "until": UNTIL}).json()
        ad = model["ads"][0]
        series = ad["series"]
        last = max(i for i, v in enumerate(series["impressions"]) if v)
        return ad["ad_id"], (date.fromisoformat(series["first_day"]) + timedelta(days=last)).isoformat(), \
            float(ad["spend"])

    def change(self, op: httpx.Client, csrf: str, ad_id: str, day: str, spend: float) -> tuple[int, float]:
        r = httpx.post(f"{self.system.sandbox_url}/_sandbox/restate",
                       json={"account_id": ACCOUNT, "date": day, "ad_id": ad_id, "set": {"spend": f"{spend:.2f}"}})
        r.raise_for_status()
        done = op.post(f"/api/v1/accounts/{ACCOUNT}/refresh", params={"since": day, "until": day, "force": "true"},
                       headers={"X-CSRF-Token": csrf})
        answered = time.time() * 1000
        done.raise_for_status()
        return done.json()["version"], answered

    def fan_out(self, n_pages: int, n_changes: int, per_context: int = 5) -> dict:
        contexts, pages = [], []
        for i in range(0, n_pages, per_context):
            ctx, first = self.context()
            contexts.append(ctx)
            pages.append(first)
            for _ in range(min(per_context, n_pages - i) - 1):
                p = ctx.new_page()
                p.goto(self.base + "/ad-fatigue" + QUERY)
                pages.append(p)
        try:
            for p in pages:
                p.wait_for_function(RENDERED, timeout=180_000)
                p.evaluate(WATCH)
            ad_id, day, spend = self.top_ad()
            latencies, missing = [], 0
            raw = RawStream(self.base, self.system)  # the BFF's side alone: when the change event is sent
            with httpx.Client(base_url=self.base, timeout=120) as op:
                op.get(self.system.sign_in_link("bench-op", ["*"], ["operator"]).removeprefix(self.base))
                csrf = op.get("/api/v1/session").json()["csrf_token"]
                for k in range(n_changes):
                    for p in pages:
                        p.evaluate("window.__changes = []")
                    version, answered = self.change(op, csrf, ad_id, day, spend + 100 + k)
                    deadline = time.monotonic() + 30
                    for p in pages:
                        while True:
                            seen = p.evaluate("window.__changes")
                            hit = next((t for text, t in seen if text.strip().endswith(f"version {version}")), None)
                            if hit is not None:
                                latencies.append((hit - answered) / 1000)
                                break
                            if time.monotonic() > deadline:
                                missing += 1
                                break
                            p.wait_for_timeout(20)
                    raw.mark(version, answered)
            raw.close()
            return {"pages": n_pages, "changes": n_changes, "missing": missing, **percentiles(latencies),
                    "sse_event": percentiles(raw.latencies)}
        finally:
            for ctx in contexts:
                ctx.close()


class RawStream:
    """One plain SSE client (httpx, a thread) beside the pages: when the BFF sent each change."""

    def __init__(self, base: str, system):
        self.client = httpx.Client(base_url=base, timeout=None)
        self.client.get(system.sign_in_link("bench-raw", ["*"], []).removeprefix(base))
        self.arrived: dict[int, float] = {}
        self.latencies: list[float] = []
        self._closed, self._ready = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self._ready.wait(60)  # the stream is open (its snapshot arrived)

    def _read(self) -> None:
        try:
            with self.client.stream("GET", f"/api/v1/accounts/{ACCOUNT}/events",
                                    params={"since": SINCE, "until": UNTIL}) as answer:
                event = ""
                for line in answer.iter_lines():
                    if self._closed.is_set():
                        return
                    if line.startswith("event: "):
                        event = line[7:]
                        self._ready.set()
                    elif line.startswith("id: ") and event in ("change", "jump"):
                        self.arrived.setdefault(int(line[4:]), time.time() * 1000)
        except httpx.HTTPError:
            pass

    def mark(self, version: int, answered_ms: float) -> None:
        deadline = time.monotonic() + 10
        while version not in self.arrived and time.monotonic() < deadline:
            time.sleep(0.01)
        if version in self.arrived:
            self.latencies.append((self.arrived[version] - answered_ms) / 1000)

    def close(self) -> None:
        self._closed.set()
        self.client.close()


def markdown(r: dict) -> str:
    load, model, fan, one = r["page_load"], r["model_fetch"], r["fan_out"], r["fan_out_1"]
    m = r["machine"]
    return "\n".join([
        f"# Page benchmarks ({r['at']})",
        "",
        f"Machine: {m['cpu']}, {m['nproc']} cores, Python {m['python']}, {m['chromium']}; the whole machine's "
        f"CPU was {100 * r['machine_busy_share']:.0f} % busy during the run (this run's processes included).",
        "",
        "| measure | p50 | p95 | p99 | n |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| page load until every widget rendered | {load['p50']:.0f} ms | {load['p95']:.0f} ms | "
        f"{load['p99']:.0f} ms | {load['n']} |",
        f"| baseline: the page model alone (fetch in the same browser) | {model['p50']:.0f} ms | "
        f"{model['p95']:.0f} ms | {model['p99']:.0f} ms | {model['n']} |",
        f"| change → DOM updated, {fan['pages']} open pages | {fan['p50']:.0f} ms | {fan['p95']:.0f} ms | "
        f"{fan['p99']:.0f} ms | {fan['n']} |",
        f"| baseline: change → DOM updated, 1 open page | {one['p50']:.0f} ms | {one['p95']:.0f} ms | "
        f"{one['p99']:.0f} ms | {one['n']} |",
        f"| the BFF's side: change → SSE event at a plain client, {fan['pages']} pages open | "
        f"{fan['sse_event']['p50']:.0f} ms | {fan['sse_event']['p95']:.0f} ms | {fan['sse_event']['p99']:.0f} ms | "
        f"{fan['sse_event']['n']} |",
        f"| the BFF's side, 1 page open | {one['sse_event']['p50']:.0f} ms | {one['sse_event']['p95']:.0f} ms | "
        f"{one['sse_event']['p99']:.0f} ms | {one['sse_event']['n']} |",
        "",
        f"Page load p50 = {load['p50'] / model['p50']:.1f} × the model fetch alone; change → DOM with "
        f"{fan['pages']} pages p50 = {fan['p50'] / one['p50']:.1f} × one page (p99 {fan['p99'] / one['p99']:.1f} ×); "
        f"updates not seen within 30 s: {fan['missing']}.",
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--name", default="page")
    args = parser.parse_args(argv)
    ensure_page_built()
    busy0, wall0 = machine_busy_seconds(), time.monotonic()
    with TemporaryDirectory() as tmp, LocalSystem(SystemConfig(
            data_dir=Path(tmp), csv_accounts=[(CSV, ACCOUNT[4:])], gateway_port=0, bff_port=0,
            scheduler_interval_s=3600, mongodb_uri=os.environ.get("MONGODB_URI") or None)) as system, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        bench = Bench(system, browser)
        bench.page_load()  # warm: the first read fetches the account from the sandbox
        loads, models = zip(*(bench.page_load() for _ in range(args.loads)))
        print(f"page load: {percentiles(loads)}", flush=True)
        one = bench.fan_out(1, args.changes)
        print(f"1 page: {one}", flush=True)
        fan = bench.fan_out(args.pages, args.changes)
        print(f"{args.pages} pages: {fan}", flush=True)
        browser.close()
    result = {"at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "machine_busy_share": (machine_busy_seconds() - busy0) / (time.monotonic() - wall0) / os.cpu_count(),
              "settings": vars(args), "page_load": percentiles(loads), "model_fetch": percentiles(models),
              "fan_out": fan, "fan_out_1": one}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
