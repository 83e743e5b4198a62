"""Fatigue-level notifications: an ad crossing into warning or critical (and back) is an event.

The rescorer (``rescoring.py``) hands over, per account, each rescored ad's
previous and new stored result. An ad's *alert state* is its level when that
is warning or critical, else "ok"; a change of alert state is an event
(caution → warning, warning → critical, critical → warning, warning →
caution, ...; caution → healthy is not). The first score of an ad counts as
coming from "ok", so a new ad that starts out critical is announced.

Events are batched per account: a batch is sent once ``batch_s`` seconds
pass without a new event of the account (at most ``12 × batch_s`` after it
opened), so the several writes of one scheduler cycle or of a first fetch
split into 90-day ranges land in one batch. It holds one message per ad —
its level before the batch → its latest level; an ad back where it started
drops out. A batch is one
``FatigueAlerts`` event for the sinks of ``services.common.notification_sinks``
(Slack-compatible webhook, e-mail): it names each ad (campaign / ad set / ad),
its level change and score, its two main reasons with numbers
(``services.common.fatigue_text``) and a link to the page.

Settings (``NotifySettings``, environment): ``NOTIFY_WEBHOOK_URL``,
``NOTIFY_SMTP_HOST``, ``NOTIFY_SMTP_PORT`` (25), ``NOTIFY_SMTP_FROM``,
``NOTIFY_SMTP_TO`` (comma-separated), ``NOTIFY_SMTP_USERNAME`` /
``NOTIFY_SMTP_PASSWORD``, ``NOTIFY_SMTP_STARTTLS`` (off), ``NOTIFY_PAGE_URL``
(the page's base URL, default ``http://127.0.0.1:8080``), ``NOTIFY_BATCH_SECONDS`` (30).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlencode

from services.common.fatigue_text import level_name, main_reasons
from services.common.notification_sinks import EmailSink, LogSink, Notifier, Sink, WebhookSink
from services.common.pb.adfatigue.v1 import fatigue_pb2
from services.common.settings import NotifySettings

log = logging.getLogger(__name__)

ALERT_LEVELS = ("warning", "critical")


def alert_state(level: str) -> str:
    """``warning`` / ``critical``, or ``ok`` for every other level (including no score yet)."""
    return level if level in ALERT_LEVELS else "ok"


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One ad's level change: the result now (``after``) and the level before (``before``, "" = no score yet)."""

    before: str
    after: fatigue_pb2.FatigueResult
    since: str = ""  # the days the score covers (for the page link)
    until: str = ""


@dataclass
class FatigueAlerts:
    """One account's batch of level changes (an event for the notification sinks)."""

    account_id: str
    changes: list[LevelChange]
    currency: str = ""
    page_url: str = "http://127.0.0.1:8080"

    def link(self, change: LevelChange) -> str:
        query = {"account": f"act_{self.account_id}"}
        if change.since and change.until:
            query.update(since=change.since, until=change.until)
        return f"{self.page_url.rstrip('/')}/ad-fatigue?{urlencode(query)}#ad-{change.after.ad_id}"

    def subject(self) -> str:
        n = len(self.changes)
        if n > 1:
            return f"adfatigue: act_{self.account_id}: {n} ads changed fatigue level"
        c = self.changes[0]
        now = level_name(c.after.level)
        return (f"adfatigue: act_{self.account_id}: {c.after.ad_name or c.after.ad_id} is "
                f"{'now' if alert_state(now) != 'ok' else 'back to'} {now}")

    def message(self, c: LevelChange) -> str:
        """The message of one ad: who, level change, the two main reasons with numbers, the page link."""
        r = c.after
        where = " / ".join(x for x in (r.campaign_name, r.adset_name.removeprefix(r.campaign_name + " / "),
                                       r.ad_name or r.ad_id) if x)
        reasons = main_reasons(r, self.currency, 2)[:2]
        lines = [f"{where}: {c.before or 'no score'} → {level_name(r.level)}"
                 + (f" (score {r.score:.1f})" if r.HasField("score") else "")]
        if reasons:
            lines.append("  because " + "; ".join(reasons))
        lines.append(f"  {self.link(c)}")
        return "\n".join(lines)

    def text(self) -> str:
        head = f"adfatigue: act_{self.account_id}: {len(self.changes)} ad(s) changed fatigue level"
        return "\n".join([head, *(self.message(c) for c in self.changes)])


def level_changes(before: Mapping[str, str], after: list[tuple[fatigue_pb2.FatigueResult, str, str]]) -> list[LevelChange]:
    """The ads of ``after`` ((result, first day, last day)) whose alert state differs from ``before`` (ad id -> level)."""
    out = []
    for result, since, until in after:
        old = before.get(result.ad_id, "")
        if alert_state(old) != alert_state(level_name(result.level)):
            out.append(LevelChange(old, result, since, until))
    return out


@dataclass
class _Batch:
    first_level: dict[str, str] = field(default_factory=dict)  # ad id -> level before the batch
    latest: dict[str, LevelChange] = field(default_factory=dict)
    opened: float | None = None  # loop time of the first event
    quiet_until: float = 0.0     # loop time batch_s after the latest event


class FatigueAlerter:
    """Collects level changes per account and publishes one ``FatigueAlerts`` per account and batch."""

    def __init__(self, notifier: Notifier, page_url: str = "http://127.0.0.1:8080", batch_s: float = 30.0):
        self.notifier = notifier
        self.page_url = page_url
        self.batch_s = batch_s
        self._batches: dict[str, _Batch] = {}
        self._currency: dict[str, str] = {}
        self._timers: dict[str, asyncio.Task] = {}
        self.sent_batches = 0

    def add(self, account_id: str, changes: list[LevelChange], currency: str = "") -> None:
        """Add an account's level changes to its open batch (opening one, sent ``batch_s`` later)."""
        if not changes:
            return
        batch = self._batches.setdefault(account_id, _Batch())
        if currency:
            self._currency[account_id] = currency
        for c in changes:
            batch.first_level.setdefault(c.after.ad_id, c.before)
            batch.latest[c.after.ad_id] = c
        loop = asyncio.get_running_loop()
        batch.quiet_until = loop.time() + self.batch_s
        if batch.opened is None:
            batch.opened = loop.time()
        if account_id not in self._timers:
            self._timers[account_id] = loop.create_task(self._flush_later(account_id, batch))

    async def _flush_later(self, account_id: str, batch: "_Batch") -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:  # until batch_s without a new event, or 12 x batch_s after the first
                due = min(batch.quiet_until, batch.opened + 12 * self.batch_s)
                if loop.time() >= due:
                    break
                await asyncio.sleep(due - loop.time())
        finally:
            self._timers.pop(account_id, None)
        await self.flush(account_id)

    async def flush(self, account_id: str) -> None:
        batch = self._batches.pop(account_id, None)
        if batch is None:
            return
        changes = []
        for ad_id, c in sorted(batch.latest.items(), key=lambda kv: (kv[1].after.campaign_name, kv[1].after.ad_name)):
            first = batch.first_level.get(ad_id, "")
            if alert_state(first) != alert_state(level_name(c.after.level)):
                changes.append(LevelChange(first, c.after, c.since, c.until))
        if changes:
            self.sent_batches += 1
            await self.notifier.publish(FatigueAlerts(account_id, changes, self._currency.get(account_id, ""),
                                                      self.page_url))

    async def aclose(self) -> None:
        """Send what is pending, then close the sinks."""
        for task in list(self._timers.values()):
            task.cancel()
        for account_id in list(self._batches):
            await self.flush(account_id)
        await self.notifier.aclose()


def alerter_from_settings(settings: NotifySettings) -> FatigueAlerter:
    """The alerter with the sinks the settings configure: always the log; the webhook and e-mail when set."""
    sinks: list[Sink] = [LogSink(log)]
    if settings.notify_webhook_url:
        sinks.append(WebhookSink(settings.notify_webhook_url))
    if settings.smtp_host:
        sinks.append(EmailSink(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.recipients,
                               username=settings.smtp_username, password=settings.smtp_password,
                               starttls=settings.smtp_starttls))
    return FatigueAlerter(Notifier(sinks), settings.page_url, settings.batch_s)


def alerter_from_env(env: Mapping[str, str]) -> FatigueAlerter:
    """``alerter_from_settings`` of the ``NOTIFY_*`` variables in ``env``; raises SettingsError (a ValueError)."""
    return alerter_from_settings(NotifySettings.from_env(env))
