"""The page's live stream: Server-Sent Events fed by CacheGateway.Subscribe.

Events (each with ``id: <version>``, the version the page shows after it):

- ``snapshot``: the whole page model (first connection);
- ``change``: what changed since the page's version (``page_model.diff``);
- ``jump``: the whole page model at a later version, when the changes since
  the page's version are no longer known here (a long disconnection);
- ``status``: ``{"gateway": "live" | "reconnecting" | "error" | "closing", "detail"}``
  — the gateway stream broke and is being re-opened, is back, or the BFF is shutting down.

A browser that reconnects sends ``Last-Event-ID``; the BFF resumes from that
version: nothing lost, nothing repeated. All pages of one account and range
share one ``Feed``: one ``Subscribe`` stream to the gateway, one page-model read
per version, one encoded ``change`` per version sent to every page that shows
the version before it (``Subscribe(from_version=…)`` when the gateway stream
is re-opened). Comment
heartbeats every ``BFF_HEARTBEAT_S`` (15 s) and ``retry:`` are sent; streams end
on BFF shutdown (sse-starlette).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

import anyio
import grpc
from sse_starlette import ServerSentEvent

from services.bff import page_model
from services.bff.page_models import Model, PageModels, is_transient
from services.bff.users import User

log = logging.getLogger(__name__)
SEP = "\n"


def _event(name: str, version: int | None, data: dict | bytes) -> bytes:
    text = data.decode() if isinstance(data, bytes) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return ServerSentEvent(data=text, event=name, id=None if version is None else str(version), sep=SEP).encode()


def _status(version: int | None, state: str, detail: str = "", **extra) -> bytes:
    return _event("status", version, {"gateway": state, "detail": detail, **extra})


@dataclass(eq=False)
class Listener:
    """One open page: the version it shows (``sent``) and the events queued for it."""
    sent: int | None
    sent_model: Model | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    ended: bool = False

    def catch_up(self, model: Model, diffs: dict | None = None) -> None:
        """Queue what brings this page to ``model`` (nothing if it shows that version already)."""
        if self.sent is not None and model.version <= self.sent:
            return
        if self.sent is None:
            event = _event("snapshot", model.version, model.encoded)
        elif self.sent_model is not None:
            key = (self.sent_model.version, model.version)
            event = diffs.get(key) if diffs is not None else None
            if event is None:
                event = _event("change", model.version, page_model.diff(self.sent_model.data, model.data))
                if diffs is not None:
                    diffs[key] = event
        else:
            event = _event("jump", model.version, model.encoded)
        self.sent, self.sent_model = model.version, model
        self.queue.put_nowait(event)


class Feed:
    """The gateway stream of one (account, range), shared by every page showing it."""

    def __init__(self, feeds: "Feeds", key: tuple[str, str, str], user: User):
        self.feeds, self.key, self.user = feeds, key, user
        self.listeners: set[Listener] = set()
        self.latest: Model | None = None
        self.status = b""
        self.task = asyncio.create_task(self._run())

    def attach(self, listener: Listener) -> None:
        self.listeners.add(listener)
        if self.latest is not None:
            listener.catch_up(self.latest)
        if self.status:
            listener.queue.put_nowait(self.status)

    def _publish(self, model: Model) -> None:
        self.latest = model
        diffs: dict = {}  # one encoded change per (from, to) version pair, shared by the pages
        for listener in list(self.listeners):
            listener.catch_up(model, diffs)

    def _say(self, status: bytes, end: bool = False) -> None:
        self.status = status
        for listener in list(self.listeners):
            listener.queue.put_nowait(status)
            if end:
                listener.ended = True
                listener.queue.put_nowait(None)

    async def _run(self) -> None:
        models, gateway = self.feeds.models, self.feeds.gateway
        account, since, until = self.key
        backoff = 0.25
        while True:
            try:
                model = await models.read(self.user, account, since, until)
                self._publish(model)
                self._say(_status(model.version, "live"))
                backoff = 0.25
                call = gateway.subscribe(self.user, account, since, until, from_version=model.version)
                try:
                    async for ev in call:
                        if ev.version <= self.latest.version:
                            continue
                        if ev.kind == ev.CHANGE:
                            new = await models.apply_change(self.user, account, since, until, ev)
                        else:  # a JUMP: the whole state at a later version
                            new = await models.read(self.user, account, since, until, at_least=ev.version)
                        if new.version > self.latest.version:
                            self._publish(new)
                finally:
                    call.cancel()
                await asyncio.sleep(backoff)  # the gateway ended the stream: open it again
            except grpc.aio.AioRpcError as exc:
                version = self.latest.version if self.latest else None
                if not is_transient(exc):
                    self._say(_status(version, "error", exc.details() or exc.code().name, code=exc.code().name),
                              end=True)
                    self.feeds.forget(self)
                    return
                log.info("gateway stream for act_%s broke (%s); re-opening", account, exc.code().name)
                self._say(_status(version, "reconnecting", f"the insights gateway is unreachable "
                                                           f"({exc.code().name}); showing the last data received, "
                                                           "reconnecting"))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.feeds.resubscribe_max_s)


class Feeds:
    def __init__(self, models: PageModels, gateway, resubscribe_max_s: float = 5.0):
        self.models, self.gateway, self.resubscribe_max_s = models, gateway, resubscribe_max_s
        self._feeds: dict[tuple, Feed] = {}

    def attach(self, key: tuple, user: User, listener: Listener) -> Feed:
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = Feed(self, key, user)
        feed.attach(listener)
        return feed

    def detach(self, feed: Feed, listener: Listener) -> None:
        feed.listeners.discard(listener)
        if not feed.listeners and self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]
            feed.task.cancel()

    def forget(self, feed: Feed) -> None:
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    @property
    def open_feeds(self) -> int:
        return len(self._feeds)

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            feed.task.cancel()
        self._feeds.clear()


async def stream(feeds: Feeds, user: User, account: str, since: str, until: str, start: Model | None,
                 last_event_id: int | None, retry_ms: int, signed_out=lambda: False):
    """SSE events for one page. ``start``: the model read before the stream opened (None: gateway was down);
    ``signed_out()``: checked before each event, so a stream opened before a sign-out delivers nothing after
    it (a last ``status`` event says so and the stream ends)."""
    key = (account, since, until)
    listener = Listener(last_event_id, feeds.models.exact(key, last_event_id) if last_event_id is not None else None)
    yield ServerSentEvent(retry=retry_ms, sep=SEP).encode()
    if start is not None:
        listener.catch_up(start)
        listener.queue.put_nowait(_status(listener.sent, "live"))
    feed = feeds.attach(key, user, listener)
    try:
        while True:
            event = await listener.queue.get()
            if event is None:
                return
            if signed_out():
                yield _event("status", None, {"session": "ended", "detail": "this session was signed out: "
                                                                            "sign in again to follow the page"})
                return
            yield event
    finally:
        feeds.detach(feed, listener)


async def until_stopped(events, stop: anyio.Event):
    """``events`` until ``stop`` is set (BFF shutdown); then a last ``status`` and a clean end of the response."""
    pending: asyncio.Task | None = None
    waiter = asyncio.ensure_future(stop.wait())
    try:
        while True:
            pending = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({pending, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if pending not in done:
                yield _event("status", None, {"gateway": "closing",
                                              "detail": "the page's server is restarting; reconnecting"})
                return
            try:
                yield pending.result()
            except StopAsyncIteration:
                return
            pending = None
    finally:
        waiter.cancel()
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await events.aclose()
