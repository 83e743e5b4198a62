"""The whole system on one machine, each service its own process (``adfatigue up``).

Embedded defaults (DESIGN.md §5): no ``MONGODB_URI`` -> an embedded
SecantusDB under ``<data_dir>/mongo``; no ``REDIS_URL`` -> single-machine
fallbacks; no ``META_ACCESS_TOKEN`` -> the Meta Graph API sandbox serving the
given CSV accounts and the built-in synthetic account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from services.cli.service_process import ServiceProcess
from services.common.auth import dev_secret
from services.common.embedded_mongo import EmbeddedMongo
from services.common.settings import GatewayAddressSettings, TokenMintSettings


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
    bff_port: int | None = None      # the page's backend: its port (0 = any free one); None = not started
    extra_env: dict[str, str] = field(default_factory=dict)
    live_demo: bool = False          # the sandbox's synthetic account changes every few seconds (LIVE_DEMO_ENV)


#: What ``--live-demo`` changes besides the sandbox: today's data is due after 10 s and restatable days after
#: 30 s, and the budget of the local sandbox (not Meta) allows the scheduler to keep up with that.
LIVE_DEMO_ENV = {
    "FRESHNESS_PARTIAL_SECONDS": "10", "FRESHNESS_PROVISIONAL_SECONDS": "30",
    "META_BUDGET_CALLS": "5000", "SCHEDULER_BUDGET_CALLS_PER_HOUR": "4000", "SCHEDULER_ONDEMAND_RESERVE_CALLS": "500",
}


class LocalSystem:
    """Start with ``start()``, stop with ``stop()`` (or use as a context manager)."""

    def __init__(self, config: SystemConfig):
        self.config = config
        self.mongo: EmbeddedMongo | None = None
        self.mongodb_uri = config.mongodb_uri
        self.processes: dict[str, ServiceProcess] = {}
        self.sandbox_url: str | None = None
        self.on_step = None  # called with each part's name as it starts (``planned()`` order)

    @property
    def logs(self) -> Path:
        return self.config.data_dir / "logs"

    def planned(self) -> list[str]:
        """The parts ``start`` will start, in order (for progress output)."""
        cfg = self.config
        parts = [] if self.mongodb_uri else ["mongodb"]
        parts += [] if cfg.graph_url else ["meta_sandbox"]
        parts += ["meta_fetcher", "fatigue_engine", "cache_gateway", "scheduler"]
        return parts + (["bff"] if cfg.bff_port is not None else [])

    def _step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def _process(self, name: str, module: str, args: list[str], own_env: dict[str, str] | None = None
                 ) -> ServiceProcess:
        demo = LIVE_DEMO_ENV if self.config.live_demo else {}
        page = {"NOTIFY_PAGE_URL": f"http://127.0.0.1:{self.config.bff_port}"} if self.config.bff_port else {}
        env = {"MONGODB_URI": self.mongodb_uri or "", "JWT_HS256_SECRET": self.jwt_secret, **demo, **page,
               # /metrics on a free port each (printed; endpoints.json lists them), JSON logs rotated daily
               "METRICS_PORT": "0", "LOG_FILE": str(self.logs / f"{name}.jsonl"), **(own_env or {}),
               **self.config.extra_env}
        proc = ServiceProcess(name, module, args, self.logs / f"{name}.log", env)
        self.processes[name] = proc
        self._step(name)
        return proc.start()

    def start(self) -> "LocalSystem":
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.jwt_secret = TokenMintSettings.from_env().jwt_hs256_secret or dev_secret(cfg.data_dir)
        try:
            if not self.mongodb_uri:
                self.mongo = EmbeddedMongo(cfg.data_dir / "mongo", log_path=self.logs / "mongo.log")
                self.logs.mkdir(parents=True, exist_ok=True)
                self._step("mongodb")
                self.mongo.start()
                self.mongodb_uri = self.mongo.uri
            graph_url = cfg.graph_url
            if not graph_url:
                args = ["--port", "0"]
                for path, account in cfg.csv_accounts:
                    args += ["--csv", str(path), "--account", account]
                if not cfg.synthetic:
                    args.append("--no-synthetic")
                if cfg.live_demo:
                    args.append("--live-demo")
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
            if cfg.bff_port is not None:
                self._process("bff", "services.bff", ["--port", str(cfg.bff_port), "--gateway", gateway.address],
                              {"BFF_SIGN_IN_USED_LINKS": str(cfg.data_dir / "sign-in-used-links.json")})
        except BaseException:
            self.stop()
            raise
        self._write_endpoints()
        return self

    def add_gateway_replica(self, name: str, env: dict[str, str] | None = None, prefix: list[str] | None = None,
                            timeout: float = 60.0) -> ServiceProcess:
        """Another CacheGateway process on the same store, fetcher and engine (a second replica); ``prefix``: a
        command to run it under (see ``ServiceProcess``)."""
        first = self.processes["cache_gateway"]
        args = list(first.args)
        args[args.index("--port") + 1] = "0"
        proc = ServiceProcess(name, first.module, args, self.logs / f"{name}.log",
                              {**first.env, "LOG_FILE": str(self.logs / f"{name}.jsonl"), **(env or {})}, prefix)
        self.processes[name] = proc.start(timeout)
        self._write_endpoints()
        return proc

    def restart(self, name: str) -> ServiceProcess:
        """Stop and start one service again with the same arguments (and port, when it was fixed)."""
        old = self.processes[name]
        old.stop()
        args = list(old.args)
        if "--port" in args:
            args[args.index("--port") + 1] = str(old.port)
        proc = ServiceProcess(name, old.module, args, self.logs / f"{name}.restart.log", old.env, old.prefix)
        self.processes[name] = proc.start()
        self._write_endpoints()
        return proc

    @property
    def page_url(self) -> str | None:
        """The /ad-fatigue page, when the BFF runs."""
        bff = self.processes.get("bff")
        return f"http://{bff.address}/ad-fatigue" if bff else None

    def sign_in_link(self, subject: str = "local", accounts=("*",), roles=("operator",), **kwargs) -> str:
        """A one-time sign-in link to the page (local runs and tests)."""
        from services.bff.sign_in import mint_sign_in_link
        return mint_sign_in_link(f"http://{self.processes['bff'].address}", self.jwt_secret, subject, accounts,
                                 roles, **kwargs)

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
        order = ["bff", "scheduler", *[n for n in self.processes if n.startswith("cache_gateway")],
                 "fatigue_engine", "meta_fetcher", "meta_sandbox"]
        order[2:2] = [n for n in self.processes if n not in order]  # replicas added under other names, first
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


def running_endpoints(data_dir: Path) -> dict:
    """What the ``up`` running from ``data_dir`` wrote to ``endpoints.json``: service name -> host:port,
    ``mongodb`` -> its URI, ``metrics`` -> {service: /metrics URL}; ``{}`` when none runs there (no file, or
    one cut short or damaged: the commands then fall back to their defaults and flags)."""
    try:
        endpoints = json.loads((data_dir / "endpoints.json").read_text())
    except (OSError, ValueError):
        return {}
    return endpoints if isinstance(endpoints, dict) else {}


def gateway_address(data_dir: Path, settings: GatewayAddressSettings) -> str:
    """Where the gateway is: ``settings.gateway_addr`` when given (``--gateway``, ``ADFATIGUE_GATEWAY_ADDR``),
    else the running ``up``'s endpoints, else the default ``127.0.0.1:50051``."""
    if settings.is_set("gateway_addr"):
        return settings.gateway_addr
    return running_endpoints(data_dir).get("cache_gateway", settings.gateway_addr)
