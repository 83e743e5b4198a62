"""Scheduler events and the sinks that receive them (DESIGN.md R10 "info when a refresh completes", R14).

Every cycle publishes one ``CycleCompleted`` (severity ``info``) to each sink of
the ``Notifier``:

- ``LogSink`` (always): one INFO log line;
- ``WebhookSink`` (``SCHEDULER_WEBHOOK_URL`` set): an HTTP POST of
  ``{"text": "<one line>"}`` as JSON - the shape Slack incoming webhooks and
  compatible receivers (Mattermost, Rocket.Chat, Teams workflows) accept -
  with httpx, ``SCHEDULER_WEBHOOK_TIMEOUT_SECONDS`` (5 s) timeout.

A sink that fails is logged (the webhook URL is never logged: it usually
carries a secret path) and counted in ``failures``; it never stops the
scheduler. Another sink (e-mail, a queue) only needs ``async send(event)``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

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


class Sink(Protocol):
    async def send(self, event: CycleCompleted) -> None: ...
    async def aclose(self) -> None: ...


class LogSink:
    """Writes each event as one INFO line (the default sink)."""

    def __init__(self, logger: logging.Logger = log):
        self.logger = logger

    async def send(self, event: CycleCompleted) -> None:
        self.logger.info("%s", event.text())

    async def aclose(self) -> None:
        return None


class _RedactUrl(logging.Filter):
    """Replaces the webhook URL in log records (httpx logs every request URL at INFO)."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        parsed = urlsplit(url)
        self.replacement = f"{parsed.scheme}://{parsed.netloc}/<webhook path redacted>"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.url in message:
            record.msg, record.args = message.replace(self.url, self.replacement), ()
        return True


class WebhookSink:
    """POSTs ``{"text": event.text()}`` to a Slack-compatible incoming webhook.

    Raises httpx errors from ``send`` (non-2xx included); the Notifier logs them
    without the URL, and httpx's own request log lines have it redacted.
    """

    def __init__(self, url: str, timeout_s: float = 5.0, client: httpx.AsyncClient | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook URL must start with http:// or https://")
        self.url = url
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._own_client = client is None
        self._redact = _RedactUrl(url)
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).addFilter(self._redact)

    async def send(self, event: CycleCompleted) -> None:
        response = await self._client.post(self.url, json={"text": event.text()})
        response.raise_for_status()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).removeFilter(self._redact)


class Notifier:
    """Fans each event out to every sink; a failing sink is logged, never raised."""

    def __init__(self, sinks: list[Sink] | None = None):
        self.sinks: list[Sink] = list(sinks) if sinks is not None else [LogSink()]
        self.published = 0
        self.failures = 0

    async def publish(self, event: CycleCompleted) -> None:
        self.published += 1
        for sink in self.sinks:
            try:
                await sink.send(event)
            except Exception as exc:
                self.failures += 1
                status = getattr(getattr(exc, "response", None), "status_code", None)
                log.warning("notification sink %s failed: %s%s", type(sink).__name__, type(exc).__name__,
                            f" (HTTP {status})" if status else "")

    async def aclose(self) -> None:
        for sink in self.sinks:
            await sink.aclose()


def build_notifier(webhook_url: str = "", timeout_s: float = 5.0) -> Notifier:
    """The log sink, plus the webhook sink when ``webhook_url`` (``SCHEDULER_WEBHOOK_URL``) is set."""
    sinks: list[Sink] = [LogSink()]
    if webhook_url:
        sinks.append(WebhookSink(webhook_url, timeout_s))
    return Notifier(sinks)
