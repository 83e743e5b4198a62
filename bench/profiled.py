"""Run a service module under ``cProfile``, switched on and off from outside by signals (benchmarks only).

    python bench/profiled.py PYTHON -m MODULE [ARGS...]

(the shape ``ServiceProcess(prefix=[sys.executable, "bench/profiled.py"])`` produces: ``PYTHON`` is ignored, the
module runs in this interpreter as ``__main__``). ``SIGUSR1`` starts profiling, ``SIGUSR2`` stops it and writes the
statistics to ``$PROFILE_OUT`` (``pstats`` format) and the garbage collections run in between, per generation, to
``$PROFILE_OUT.gc.json``. Used to count which functions run per request, a deterministic
number, unlike time: ``bench/telemetry_overhead.py`` compares the calls per L1 hit of a gateway with telemetry on
and off.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import runpy
import signal
import sys


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        raise SystemExit("usage: python bench/profiled.py PYTHON -m MODULE [ARGS...]")
    out = os.environ.get("PROFILE_OUT")
    if not out:
        raise SystemExit("PROFILE_OUT (where to write the statistics) is not set")
    profile = cProfile.Profile()
    collections: list[int] = []

    def start(*_):
        collections[:] = [g["collections"] for g in gc.get_stats()]
        profile.enable()

    def dump(*_):
        profile.disable()
        ran = [g["collections"] - before for g, before in zip(gc.get_stats(), collections)]
        with open(out + ".gc.json", "w") as fh:
            json.dump({"collections_per_generation": ran}, fh)
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, dump)
    module = sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
