"""Build the /ad-fatigue page (``web/``) when its sources changed: ``npm ci`` then ``npm run build``.

Needs Node 20+ and npm; installs exactly what ``web/package-lock.json`` pins.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"
SOURCES = ("src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")


class PageBuildError(Exception):
    pass


def _newest(paths) -> float:
    newest = 0.0
    for p in paths:
        if p.is_dir():
            newest = max([newest, *(f.stat().st_mtime for f in p.rglob("*") if f.is_file())])
        elif p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def _run(args: list[str], web: Path) -> None:
    done = subprocess.run(args, cwd=web, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise PageBuildError(f"`{' '.join(args)}` in {web} failed:\n{tail}")


def ensure_page_built(web: Path = WEB) -> Path:
    """``web/dist`` up to date with the sources; returns it. Raises PageBuildError saying what to install."""
    dist = web / "dist"
    index = dist / "index.html"
    if index.exists() and index.stat().st_mtime >= _newest(web / s for s in SOURCES):
        return dist
    if not shutil.which("npm"):
        raise PageBuildError("the page needs Node 20+ and npm to build (e.g. `apt-get install nodejs npm`); "
                             "or start with --no-page")
    installed = web / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (web / "package-lock.json").stat().st_mtime:
        _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], web)
    _run(["npm", "run", "build"], web)
    return dist
