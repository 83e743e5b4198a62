"""Where events go: the sinks of a ``Notifier`` (DESIGN.md R14: notifications as sinks of events).

An event is any object with ``text()`` (one human message; several lines allowed) and, for
e-mail, optionally ``subject()``. Sinks:

- ``LogSink``: one INFO log line per event (always on);
- ``WebhookSink``: an HTTP POST of ``{"text": ...}`` as JSON (httpx) - the shape Slack incoming
  webhooks and compatible receivers (Mattermost, Rocket.Chat, Teams workflows) accept;
- ``EmailSink``: one plain-text e-mail per event over SMTP (the standard library's ``smtplib``,
  run in a thread), optional STARTTLS and login.

A sink that fails is logged (never its URL nor credentials) and counted in ``Notifier.failures``;
it never stops the service that publishes.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)


class Event(Protocol):
    def text(self) -> str: ...


class Sink(Protocol):
    async def send(self, event: Event) -> None: ...
    async def aclose(self) -> None: ...


class LogSink:
    """Writes each event as one INFO line (the default sink)."""

    def __init__(self, logger: logging.Logger = log):
        self.logger = logger

    async def send(self, event: Event) -> None:
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

    async def send(self, event: Event) -> None:
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

    async def publish(self, event: Event) -> None:
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


class EmailSink:
    """Sends each event as one plain-text e-mail: ``Subject`` = ``event.subject()`` (or the first line of
    the text), body = ``event.text()``.

    ``to``: one or more addresses. Raises ``smtplib.SMTPException`` / ``OSError`` from ``send``
    (refused recipients, connection failures); the Notifier logs them without credentials.
    """

    def __init__(self, host: str, port: int, sender: str, to: list[str], *, username: str = "", password: str = "",
                 starttls: bool = False, timeout_s: float = 10.0):
        if not host or not sender or not to:
            raise ValueError("an e-mail sink needs an SMTP host, a From address and at least one To address")
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.username, self.password, self.starttls, self.timeout_s = username, password, starttls, timeout_s

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)

    async def send(self, event: Event) -> None:
        text = event.text()
        subject = event.subject() if hasattr(event, "subject") else text.splitlines()[0]
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, ", ".join(self.to), subject
        message.set_content(text)
        await asyncio.to_thread(self._send, message)

    async def aclose(self) -> None:
        return None
