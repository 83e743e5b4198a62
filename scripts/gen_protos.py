"""Regenerate the Python code for protos/ into services/common/pb/.

Usage:
    python scripts/gen_protos.py          # write the generated files
    python scripts/gen_protos.py --check  # exit 1 if the committed files are stale

The protos live under their package path (protos/adfatigue/v1/*.proto); the
generated modules are rewritten to import each other through
``services.common.pb`` so they import cleanly after ``pip install`` with no
sys.path tricks (the approach of Temporal's scripts/gen_protos.py).
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "services" / "common" / "pb"
PY_PACKAGE = "services.common.pb"

_IMPORT = re.compile(r"^from adfatigue\.v1 import", re.MULTILINE)


def generate(out: Path) -> None:
    """Run protoc (grpcio-tools) over every .proto into ``out``."""
    from grpc_tools import protoc  # dev dependency
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out.rglob("*.py*"):
        text = path.read_text()
        path.write_text(_IMPORT.sub(f"from {PY_PACKAGE}.adfatigue.v1 import", text))
    for pkg in (out, out / "adfatigue", out / "adfatigue" / "v1"):
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from protos/ by scripts/gen_protos.py; do not edit."""\n')


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the generated code is stale")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "pb"
        fresh.mkdir()
        generate(fresh)
        if opts.check:
            stale = [f for f in sorted(_files(fresh) | _files(OUT))
                     if not (OUT / f).exists() or not (fresh / f).exists()
                     or not filecmp.cmp(fresh / f, OUT / f, shallow=False)]
            if stale:
                print("stale generated code (run: python scripts/gen_protos.py):", *stale, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        if OUT.exists():
            shutil.rmtree(OUT)
        shutil.copytree(fresh, OUT)
        print(f"generated {len(_files(OUT))} files into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
