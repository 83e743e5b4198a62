"""The CLI's output console: rich on a terminal, plain wide lines otherwise.

Colour follows rich's rules: only on a terminal, never when ``NO_COLOR`` is
set (https://no-color.org), forced with ``FORCE_COLOR``. Off a terminal the
width is ``COLUMNS`` or 160 characters, so piped tables wrap as little as
possible.
"""

from __future__ import annotations

import os
import shutil
import sys

from rich.console import Console


def terminal_console(file=None) -> Console:
    """A console writing to ``file`` (default stdout)."""
    out = file or sys.stdout
    if out.isatty():
        return Console(file=out, highlight=False)
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 160
    return Console(file=out, width=width, highlight=False, soft_wrap=False)


def invoked_as() -> str:
    """How the person started this CLI, for hints they can paste back.

    ``.venv/bin/adfatigue`` when it was started by that path from the current folder (the README's
    way), ``adfatigue`` when it was found on ``PATH`` or run as ``python -m services.cli.main``.
    """
    arg0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(arg0) != "adfatigue" or os.sep not in arg0 or shutil.which("adfatigue") == arg0:
        return "adfatigue"
    relative = os.path.relpath(arg0)
    return relative if not relative.startswith("..") else arg0
