"""``python -m services.fatigue_engine --port N [--host 127.0.0.1]``.

Needs a JWT key (``JWT_HS256_SECRET``, ``JWT_PUBLIC_KEY`` or ``JWT_JWKS_URL``) to check its callers.
"""

from __future__ import annotations

import argparse
import asyncio

from services.common.logs import configure_logging
from services.common.settings import parse_service_args
from services.fatigue_engine.server import serve
from services.fatigue_engine.settings import EngineSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.fatigue_engine",
                                     description="FatigueEngine gRPC server (FATIGUE_SPEC.md v1.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    args = parse_service_args(parser, EngineSettings, argv)
    configure_logging("fatigue_engine", args.settings)
    try:
        asyncio.run(serve(args.host, args.port))
    except ValueError as exc:  # no JWT key to check callers with
        parser.exit(2, f"fatigue_engine: {exc}\n")


if __name__ == "__main__":
    main()
