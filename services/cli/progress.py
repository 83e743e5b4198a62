"""Progress of long steps (``up``'s start-up, a first fetch, backup, restore): rich on a terminal, plain lines
otherwise.

``Steps`` is a known number of steps (services to start, collections to copy,
documents to restore): on a terminal a rich progress bar with the current
step, the count and the elapsed time; off a terminal one line when a step
starts (``starting meta_fetcher (3/7) ...``) and the total at the end, so logs
and CI output stay readable. ``waiting`` is one step of unknown length (a
first fetch from Meta): a spinner with the elapsed time on a terminal, a
line before and after otherwise.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Steps:
    """Named steps (``with Steps(console, "starting", 7) as s: s.step("mongodb"); s.step("meta_sandbox") ...``)
    or counted units (``s.advance(500, "insights")``)."""

    def __init__(self, console: Console, title: str, total: int, unit: str = ""):
        self.console, self.title, self.total, self.unit = console, title, total, unit
        self.done = 0
        self._started = time.monotonic()
        self._progress: Progress | None = None
        self._task = None
        self._current: str | None = None  # the named step under way
        self._part: str | None = None

    def __enter__(self) -> "Steps":
        if self.console.is_terminal:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=self.total)
        return self

    def step(self, name: str) -> None:
        """The next named step begins (the one before it is done)."""
        if self._current is not None:
            self.advance()
        self._current = name
        self._show(f"{self.title} {name} ({self.done + 1}/{self.total}) ...", name)

    def part(self, name: str) -> None:
        """Work moves on to ``name`` (a collection, say); units are counted with ``advance``."""
        if name != self._part:
            self._part = name
            self._show(f"{self.title} {name} ({self.done}/{self.total} {self.unit} so far) ...", name)

    def _show(self, line: str, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self.title} {name}")
        else:
            self.console.print(line, highlight=False)

    def advance(self, amount: int = 1, name: str = "") -> None:
        """``amount`` more units are done (``name``: what is being worked on now, for the terminal view)."""
        self.done += amount
        if self._progress is not None:
            self._progress.update(self._task, advance=amount,
                                  **({"description": f"{self.title} {name}"} if name else {}))

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._current is not None:
            self.advance()
        elapsed = time.monotonic() - self._started
        if self._progress is not None:
            self._progress.stop()
        elif exc_type is None:
            unit = f" {self.unit}" if self.unit else ""
            self.console.print(f"{self.title}: {self.done}/{self.total}{unit} done in {elapsed:.1f} s", highlight=False)


@contextlib.contextmanager
def waiting(console: Console, text: str) -> Iterator[None]:
    """One step of unknown length: a spinner on a terminal; ``text ...`` and ``text: done in N s`` otherwise."""
    started = time.monotonic()
    if console.is_terminal:
        with console.status(f"{text} ..."):
            yield
        console.print(f"{text}: done in {time.monotonic() - started:.1f} s", highlight=False)
        return
    console.print(f"{text} ...", highlight=False)
    yield
    console.print(f"{text}: done in {time.monotonic() - started:.1f} s", highlight=False)
