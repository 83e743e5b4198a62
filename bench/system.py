"""The system under test, started for one benchmark run and always stopped.

Processes (all on loopback, this machine):

- ``meta_sandbox`` started here (not by LocalSystem) so its limits can be
  lifted: ``--app-capacity``/``--account-capacity`` 10^9 calls/hour — with the
  real dev-tier limits the naive contender is refused within minutes, and the
  benchmark would measure the limiter, not the contenders (the report says how
  far over the real limits each contender is). Served accounts: the CSV files of
  ``bench.accounts``; ``--no-synthetic``. Meta's latency: a sandbox fault
  ``{"kind": "latency", "latency_ms": L, "endpoint": "any"}`` on every Graph
  request (every page of every insights call, and account look-ups).
- ``LocalSystem`` (services/cli/local_system.py) with ``graph_url`` = that
  sandbox: embedded SecantusDB (or ``MONGODB_URI``), meta_fetcher
  (``META_BUDGET_CALLS`` 10^9 for the same reason), fatigue_engine,
  cache_gateway (replica A: the simulated-day gateway, its time settings
  divided by the time compression) and the scheduler (interval 1 day, i.e. off,
  unless ``scheduler=True``: then its interval and budget window are divided by
  the compression too and it reads the same FRESHNESS_* settings).
- ``cache_gateway_b``: a second replica on the same store with production time
  settings (L1 TTL 60 s, provisional 6 h), for per-tier latency,
  micro-benchmarks, throughput, and as the second replica of the subscriber test.
- ``bench.proxy`` processes: ``naive`` (no cache), ``ttl_day`` (TTL compressed
  like the day) and ``ttl_real`` (the same TTL in real seconds).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.accounts import BenchAccount, make_accounts, sample_account
from bench.common import machine_busy_seconds, proc_cpu_seconds, proc_memory
from services.cli.local_system import LocalSystem, SystemConfig
from services.cli.service_process import ServiceProcess
from services.common.auth import bearer, mint_token

REPO = Path(__file__).resolve().parent.parent
WORK_DAY_S = 8 * 3600          # the simulated working day: 09:00-17:00
L1_TTL_S = 300.0               # gateway defaults (services/cache_gateway/server.py)
PROVISIONAL_S = 6 * 3600.0
PARTIAL_S = 15 * 60.0
UNLIMITED = 10 ** 9


@dataclass
class SystemSettings:
    accounts: int = 10
    history_days: int = 90
    calibration_accounts: int = 1
    day_seconds: float = 60.0          # wall seconds for the 8-hour working day
    meta_latency_ms: int = 300
    ttl_minutes: float = 15.0          # the plain TTL cache's TTL, simulated minutes
    scheduler: bool = False
    seed: int = 1
    keep: bool = False                 # keep the temporary directory (logs) after the run
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def compression(self) -> float:
        return WORK_DAY_S / self.day_seconds


class BenchSystem:
    def __init__(self, settings: SystemSettings, log=print):
        self.settings = settings
        self.log = log
        self.tmp = Path(tempfile.mkdtemp(prefix="adfatigue-bench-"))
        self.accounts: list[BenchAccount] = []
        self.calibration: list[BenchAccount] = []
        self.sample: BenchAccount | None = None   # the real sample account (custom-range page), if shipped
        self.sandbox: ServiceProcess | None = None
        self.system: LocalSystem | None = None
        self.proxies: dict[str, ServiceProcess] = {}
        self.db_name = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.started_s = 0.0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "BenchSystem":
        t0 = time.perf_counter()
        s = self.settings
        f = s.compression
        self.accounts, self.calibration = make_accounts(self.tmp / "csv", s.accounts, days=s.history_days,
                                                        calibration=s.calibration_accounts, seed=s.seed)
        args = ["--port", "0", "--no-synthetic", "--app-capacity", str(UNLIMITED),
                "--account-capacity", str(UNLIMITED)]
        self.sample = sample_account()
        for a in self.accounts + self.calibration + ([self.sample] if self.sample else []):
            args += ["--csv", str(a.csv_path), "--account", a.account_id]
        self.sandbox = ServiceProcess("meta_sandbox", "services.meta_sandbox", args, self.tmp / "logs" / "meta_sandbox.log",
                                      self._env())
        self.sandbox.start(timeout=300)
        self.sandbox_url = f"http://{self.sandbox.address}"
        env = {
            "MONGODB_DB": self.db_name, "META_BUDGET_CALLS": str(UNLIMITED), "LOG_LEVEL": "WARNING",
            "L1_TTL_SECONDS": f"{L1_TTL_S / f:.6g}", "FRESHNESS_PROVISIONAL_SECONDS": f"{PROVISIONAL_S / f:.6g}",
            "FRESHNESS_PARTIAL_SECONDS": f"{PARTIAL_S / f:.6g}", **self._env(), **s.extra_env,
        }
        if s.scheduler:  # its per-hour budget is per simulated hour too (the fetcher's budget is lifted anyway)
            env.setdefault("META_BUDGET_WINDOW_S", f"{3600.0 / f:.6g}")
        config = SystemConfig(data_dir=self.tmp / "system", gateway_port=0, graph_url=self.sandbox_url,
                              scheduler_interval_s=(600.0 / f) if s.scheduler else 86400.0,
                              mongodb_uri=os.environ.get("MONGODB_URI") or None, extra_env=env)
        self.system = LocalSystem(config)
        self.system.start()
        self.set_meta_latency(s.meta_latency_ms)
        # the measured caller also brackets its calls with GetStats, an operator RPC: it carries that role
        self.user_md = bearer(mint_token(self.system.jwt_secret, "bench-bff", ["*"], ["operator"], ttl_s=6 * 3600))
        self.operator_md = bearer(mint_token(self.system.jwt_secret, "bench-operator", ["*"], ["operator"],
                                             ttl_s=6 * 3600))
        self.started_s = time.perf_counter() - t0
        return self

    def _env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH", "")
        return {"PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}

    def start_proxy(self, name: str, ttl_s: float) -> ServiceProcess:
        fetcher = self.system.processes["meta_fetcher"].address
        engine = self.system.processes["fatigue_engine"].address
        proc = ServiceProcess(name, "bench.proxy", ["--port", "0", "--fetcher", fetcher, "--engine", engine,
                                                    "--ttl-seconds", f"{ttl_s:.6g}"],
                              self.tmp / "logs" / f"{name}.log",
                              {"JWT_HS256_SECRET": self.system.jwt_secret, **self._env()})
        self.proxies[name] = proc.start()
        return proc

    def start_aux(self, name: str, module: str, args: list[str] | None = None) -> ServiceProcess:
        """Another benchmark-only process (stopped with the rest)."""
        proc = ServiceProcess(name, module, ["--port", "0", *(args or [])], self.tmp / "logs" / f"{name}.log",
                              self._env())
        self.proxies[name] = proc.start()
        return proc

    def start_production_gateway(self, name: str = "cache_gateway_b") -> ServiceProcess:
        if name in self.system.processes:
            return self.system.processes[name]
        return self.system.add_gateway_replica(name, {
            "L1_TTL_SECONDS": f"{L1_TTL_S:g}", "FRESHNESS_PROVISIONAL_SECONDS": f"{PROVISIONAL_S:g}",
            "FRESHNESS_PARTIAL_SECONDS": f"{PARTIAL_S:g}"})

    def stop(self) -> None:
        for proc in self.proxies.values():
            try:
                proc.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                pass
        if self.system is not None:
            try:
                if self.system.mongo is None and self.system.mongodb_uri:  # an external store: drop our database
                    from pymongo import MongoClient
                    with MongoClient(self.system.mongodb_uri, serverSelectionTimeoutMS=3000) as client:
                        client.drop_database(self.db_name)
            except Exception:  # noqa: BLE001
                pass
            self.system.stop()
        if self.sandbox is not None:
            self.sandbox.stop()
        if not self.settings.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "BenchSystem":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers --------------------------------------------------------------------------------
    def address(self, name: str) -> str:
        if name in self.proxies:
            return self.proxies[name].address
        return self.system.processes[name].address

    def pid(self, name: str) -> int:
        proc = self.proxies.get(name) or self.system.processes[name]
        return proc.proc.pid

    def pids(self) -> dict[str, int]:
        out = {"load_generator": os.getpid()}
        if self.sandbox is not None and self.sandbox.proc is not None:
            out["meta_sandbox"] = self.sandbox.proc.pid
        if self.system is not None:
            if self.system.mongo is not None and self.system.mongo.proc is not None:
                out["mongodb (SecantusDB)"] = self.system.mongo.proc.pid
            out.update({n: p.proc.pid for n, p in self.system.processes.items() if p.proc is not None})
        out.update({n: p.proc.pid for n, p in self.proxies.items() if p.proc is not None})
        return out

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by every process of the run (subtract two of these for a phase), and
        ``machine busy`` (every process on the machine: the difference to the sum is somebody else's)."""
        out = {name: proc_cpu_seconds(pid) for name, pid in self.pids().items()}
        out["machine busy"] = machine_busy_seconds()
        return out

    def memory(self, name: str) -> dict[str, int]:
        return proc_memory(self.pid(name))

    def set_meta_latency(self, ms: int) -> None:
        httpx.delete(f"{self.sandbox_url}/_sandbox/faults", timeout=10).raise_for_status()
        if ms > 0:
            httpx.post(f"{self.sandbox_url}/_sandbox/faults", timeout=10,
                       json={"kind": "latency", "latency_ms": int(ms), "count": UNLIMITED, "endpoint": "any"}
                       ).raise_for_status()

    def sandbox_counts(self) -> dict[str, int]:
        """Graph calls answered so far (``graph_requests``: every HTTP request; ``insights_requests``: pages)."""
        body = httpx.get(f"{self.sandbox_url}/_sandbox/stats", timeout=60).json()
        return {k: body[k] for k in ("graph_requests", "insights_requests", "account_requests", "async_requests")}

    def reset_sandbox_stats(self) -> None:
        httpx.post(f"{self.sandbox_url}/_sandbox/reset_stats", timeout=10).raise_for_status()

    async def restate(self, client: httpx.AsyncClient, account_id: str, day: str, leads: int) -> int:
        r = await client.post(f"{self.sandbox_url}/_sandbox/restate", timeout=30,
                              json={"account_id": account_id, "date": day, "actions_delta": {"lead": str(leads)}})
        r.raise_for_status()
        return int(r.json().get("restated", 0))
