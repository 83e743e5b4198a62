"""Scheduler events and the sinks that receive them (DESIGN.md R10 "info when a refresh completes", R14).

Every cycle publishes one ``CycleCompleted`` (severity ``info``) to each sink of
the ``Notifier``:

- ``LogSink`` (always): one INFO log line;
- ``WebhookSink`` (``SCHEDULER_WEBHOOK_URL`` set): an HTTP POST of
  ``{"text": "<one line>"}`` as JSON - the shape Slack incoming webhooks and
  compatible receivers (Mattermost, Rocket.Chat, Teams workflows) accept -
  with httpx, ``SCHEDULER_WEBHOOK_TIMEOUT_SECONDS`` (5 s) timeout.

The sinks live in ``services.common.notification_sinks`` (the gateway's
fatigue-level notifications use them too). A sink that fails is logged (the
webhook URL is never logged: it usually carries a secret path) and counted in
``failures``; it never stops the scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from services.common.notification_sinks import LogSink, Notifier, Sink, WebhookSink  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

INFO = "info"


@dataclass(frozen=True, slots=True)
class CycleCompleted:
    """One scheduler cycle finished. Times ISO-8601 UTC; calls = Meta HTTP requests."""

    cycle: int
    leader: str
    fencing_token: int
    started: str
    finished: str
    duration_s: float
    refreshed_items: int
    accounts_refreshed: int
    deferred_items: int
    failed_items: int
    calls_spent: int
    budget_left: int | None
    scheduler_share: int
    errors: tuple[str, ...] = ()
    severity: str = INFO
    kind: str = "refresh_completed"

    def text(self) -> str:
        """One human line, e.g. for Slack."""
        line = (f"adfatigue scheduler: refresh cycle {self.cycle} completed in {self.duration_s:.1f} s - "
                f"{self.refreshed_items} range(s) of {self.accounts_refreshed} account(s) refreshed, "
                f"{self.calls_spent} Meta call(s), {self.deferred_items} waiting for budget, "
                f"{self.failed_items} failed")
        if self.budget_left is not None:
            line += f"; budget left {self.budget_left} of {self.scheduler_share}/h"
        if self.errors:
            line += f"; first error: {self.errors[0]}"
        return line

    def as_dict(self) -> dict:
        return asdict(self)


def build_notifier(webhook_url: str = "", timeout_s: float = 5.0) -> Notifier:
    """The log sink, plus the webhook sink when ``webhook_url`` (``SCHEDULER_WEBHOOK_URL``) is set."""
    sinks: list[Sink] = [LogSink()]
    if webhook_url:
        sinks.append(WebhookSink(webhook_url, timeout_s))
    return Notifier(sinks)
