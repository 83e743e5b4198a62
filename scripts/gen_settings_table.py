"""Write the settings reference table into README.md from the settings models (services/common/settings).

Usage:
    python scripts/gen_settings_table.py          # rewrite the table between the markers
    python scripts/gen_settings_table.py --check  # exit 1 if README.md's table is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.bff.settings import BffSettings  # noqa: E402
from services.cache_gateway.settings import GatewaySettings  # noqa: E402
from services.cli.settings import CliSettings  # noqa: E402
from services.common.settings.table import replace_table, settings_table  # noqa: E402
from services.fatigue_engine.settings import EngineSettings  # noqa: E402
from services.meta_fetcher.settings import FetcherSettings  # noqa: E402
from services.meta_sandbox.settings import SandboxSettings  # noqa: E402
from services.scheduler.settings import SchedulerSettings  # noqa: E402

#: Every service's settings model, by the name people know the service by.
SERVICE_SETTINGS = {"cache_gateway": GatewaySettings, "meta_fetcher": FetcherSettings,
                    "scheduler": SchedulerSettings, "fatigue_engine": EngineSettings, "bff": BffSettings,
                    "cli": CliSettings, "meta_sandbox": SandboxSettings}
README = ROOT / "README.md"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 if README.md is stale")
    args = p.parse_args(argv)
    text = README.read_text()
    wanted = replace_table(text, settings_table(SERVICE_SETTINGS))
    if args.check:
        if wanted != text:
            print("README.md's settings table is stale: run python scripts/gen_settings_table.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
