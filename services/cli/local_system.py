"""The whole system on one machine, each service its own process (``adfatigue up``).

Embedded defaults (DESIGN.md §5): no ``MONGODB_URI`` -> an embedded
SecantusDB under ``<data_dir>/mongo``; no ``REDIS_URL`` -> single-machine
fallbacks; no ``META_ACCESS_TOKEN`` -> the Meta Graph API sandbox serving the
given CSV accounts and the built-in synthetic account.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from services.cli.service_process import ServiceProcess
from services.common.auth import dev_secret
from services.common.embedded_mongo import EmbeddedMongo


@dataclass
class SystemConfig:
    data_dir: Path
    csv_accounts: list[tuple[Path, str]] = field(default_factory=list)  # (file, account id)
    synthetic: bool = True
    gateway_port: int = 50051
    scheduler_interval_s: float = 600.0
    mongodb_uri: str | None = None   # None -> embedded
    graph_url: str | None = None     # None -> sandbox
    api_version: str = "v23.0"
    extra_env: dict[str, str] = field(default_factory=dict)


class LocalSystem:
    """Start with ``start()``, stop with ``stop()`` (or use as a context manager)."""

    def __init__(self, config: SystemConfig):
        self.config = config
        self.mongo: EmbeddedMongo | None = None
        self.mongodb_uri = config.mongodb_uri
        self.processes: dict[str, ServiceProcess] = {}
        self.sandbox_url: str | None = None

    @property
    def logs(self) -> Path:
        return self.config.data_dir / "logs"

    def _process(self, name: str, module: str, args: list[str]) -> ServiceProcess:
        env = {"MONGODB_URI": self.mongodb_uri or "", "JWT_HS256_SECRET": self.jwt_secret,
               # /metrics on a free port each (printed; endpoints.json lists them), JSON logs rotated daily
               "METRICS_PORT": "0", "LOG_FILE": str(self.logs / f"{name}.jsonl"), **self.config.extra_env}
        proc = ServiceProcess(name, module, args, self.logs / f"{name}.log", env)
        self.processes[name] = proc
        return proc.start()

    def start(self) -> "LocalSystem":
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.jwt_secret = os.environ.get("JWT_HS256_SECRET") or dev_secret(cfg.data_dir)
        try:
            if not self.mongodb_uri:
                self.mongo = EmbeddedMongo(cfg.data_dir / "mongo", log_path=self.logs / "mongo.log")
                self.logs.mkdir(parents=True, exist_ok=True)
                self.mongo.start()
                self.mongodb_uri = self.mongo.uri
            graph_url = cfg.graph_url
            if not graph_url:
                args = ["--port", "0"]
                for path, account in cfg.csv_accounts:
                    args += ["--csv", str(path), "--account", account]
                if not cfg.synthetic:
                    args.append("--no-synthetic")
                sandbox = self._process("meta_sandbox", "services.meta_sandbox", args)
                graph_url = self.sandbox_url = f"http://{sandbox.address}"
            fetcher = self._process("meta_fetcher", "services.meta_fetcher",
                                    ["--port", "0", "--graph-url", graph_url, "--api-version", cfg.api_version])
            engine = self._process("fatigue_engine", "services.fatigue_engine", ["--port", "0"])
            gateway = self._process("cache_gateway", "services.cache_gateway",
                                    ["--port", str(cfg.gateway_port), "--fetcher", fetcher.address,
                                     "--engine", engine.address])
            self._process("scheduler", "services.scheduler",
                          ["--port", "0", "--gateway", gateway.address,
                           "--interval-seconds", str(cfg.scheduler_interval_s)])
        except BaseException:
            self.stop()
            raise
        self._write_endpoints()
        return self

    def add_gateway_replica(self, name: str, env: dict[str, str] | None = None) -> ServiceProcess:
        """Another CacheGateway process on the same store, fetcher and engine (a second replica)."""
        first = self.processes["cache_gateway"]
        args = list(first.args)
        args[args.index("--port") + 1] = "0"
        proc = ServiceProcess(name, first.module, args, self.logs / f"{name}.log",
                              {**first.env, "LOG_FILE": str(self.logs / f"{name}.jsonl"), **(env or {})})
        self.processes[name] = proc.start()
        self._write_endpoints()
        return proc

    def restart(self, name: str) -> ServiceProcess:
        """Stop and start one service again with the same arguments (and port, when it was fixed)."""
        old = self.processes[name]
        old.stop()
        args = list(old.args)
        if "--port" in args:
            args[args.index("--port") + 1] = str(old.port)
        proc = ServiceProcess(name, old.module, args, old.log_path.with_suffix(".restart.log"), old.env)
        self.processes[name] = proc.start()
        self._write_endpoints()
        return proc

    def endpoints(self) -> dict[str, str]:
        out = {name: p.address for name, p in self.processes.items()}
        out["mongodb"] = self.mongodb_uri or ""
        if self.sandbox_url:
            out["meta_sandbox"] = self.sandbox_url
        return out

    def metrics_urls(self) -> dict[str, str]:
        """Each service's Prometheus ``/metrics`` URL (the sandbox has none)."""
        urls = {name: p.metrics_url() for name, p in self.processes.items() if name != "meta_sandbox"}
        return {name: url for name, url in urls.items() if url}

    def _write_endpoints(self) -> None:
        (self.config.data_dir / "endpoints.json").write_text(
            json.dumps({**self.endpoints(), "metrics": self.metrics_urls()}, indent=2))

    def stop(self) -> None:
        order = ["scheduler", *[n for n in self.processes if n.startswith("cache_gateway")],
                 "fatigue_engine", "meta_fetcher", "meta_sandbox"]
        for name in order:
            proc = self.processes.get(name)
            if proc:
                proc.stop()
        if self.mongo:
            self.mongo.stop()
        endpoints = self.config.data_dir / "endpoints.json"
        if endpoints.exists():
            endpoints.unlink()

    def __enter__(self) -> "LocalSystem":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def gateway_address(data_dir: Path, explicit: str | None = None) -> str:
    """Where the gateway is: ``explicit``, ``ADFATIGUE_GATEWAY_ADDR``, the running ``up``'s endpoints, or the default."""
    if explicit:
        return explicit
    if os.environ.get("ADFATIGUE_GATEWAY_ADDR"):
        return os.environ["ADFATIGUE_GATEWAY_ADDR"]
    endpoints = data_dir / "endpoints.json"
    if endpoints.exists():
        return json.loads(endpoints.read_text()).get("cache_gateway", "127.0.0.1:50051")
    return "127.0.0.1:50051"
