"""A service's stop, bounded: every step gets a few seconds and all of them together a budget.

A service stops on SIGTERM by closing what it holds (streams, the change feed, pending flushes, clients).
Some of those steps talk to a dependency; with the dependency gone (MongoDB stopped first, a network
partition), each such step waited for the driver's own timeout (pymongo's server selection: 30 s) and a
gateway took minutes to exit — past Kubernetes' grace period (30 s by default), and past the local
launcher's, which then killed it. ``ShutdownSteps`` gives each step at most ``step_s`` and the whole stop
``budget_s``; a step that does not finish in time is abandoned and logged (what it held is lost only where
the dependency was unreachable anyway: the audit log, for one, counts what it could not store).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Awaitable

log = logging.getLogger(__name__)


class ShutdownSteps:
    def __init__(self, budget_s: float = 20.0, step_s: float = 5.0, clock=time.monotonic) -> None:
        self.step_s = step_s
        self.clock = clock
        self.deadline = clock() + budget_s
        self.abandoned: list[str] = []

    async def step(self, what: str, awaitable: Awaitable, limit_s: float | None = None) -> None:
        """Await ``awaitable`` for at most ``limit_s`` (default ``step_s``) and what is left of the budget; never
        raises. A task that runs out of time is cancelled (``asyncio.wait_for``)."""
        left = min(self.step_s if limit_s is None else limit_s, self.deadline - self.clock())
        if left <= 0:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            self.abandoned.append(what)
            log.warning("stopping: no time left for %s; skipped", what)
            return
        try:
            await asyncio.wait_for(awaitable, left)
        except asyncio.TimeoutError:
            self.abandoned.append(what)
            log.warning("stopping: %s did not finish within %.1f s; abandoned (a dependency is unreachable?)",
                        what, left)
        except Exception as exc:  # a failing step must not keep the others from running
            self.abandoned.append(what)
            log.warning("stopping: %s failed (%s); going on", what, type(exc).__name__)
