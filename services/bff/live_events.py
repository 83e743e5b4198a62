"""The page's live stream: Server-Sent Events fed by CacheGateway.Subscribe.

Events (each with ``id: <version>``, the version the page shows after it):

- ``snapshot``: the whole page model (first connection);
- ``change``: what changed since the page's version (``page_model.diff``);
- ``jump``: the whole page model at a later version, when the changes since
  the page's version are no longer known here (a long disconnection);
- ``status``: ``{"gateway": "live" | "reconnecting" | "error" | "closing", "detail"}``
  — the gateway stream broke and is being re-opened, is back, or the BFF is shutting down.

A browser that reconnects sends ``Last-Event-ID``; the BFF resumes with
``Subscribe(from_version=…)``: nothing lost, nothing repeated. Comment
heartbeats every ``BFF_HEARTBEAT_S`` (15 s) and ``retry:`` are sent; streams end
on BFF shutdown (sse-starlette).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import anyio
import grpc
from sse_starlette import ServerSentEvent

from services.bff import page_model
from services.bff.page_models import Model, PageModels, is_transient
from services.bff.users import User

log = logging.getLogger(__name__)


def _event(name: str, version: int | None, data: dict | bytes, retry: int | None = None) -> ServerSentEvent:
    text = data.decode() if isinstance(data, bytes) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return ServerSentEvent(data=text, event=name, id=None if version is None else str(version), retry=retry)


async def stream(models: PageModels, gateway, user: User, account: str, since: str, until: str,
                 start: Model | None, last_event_id: int | None, retry_ms: int, resubscribe_max_s: float):
    """SSE events for one page. ``start``: the model read before the stream opened (None: gateway was down)."""
    key = (account, since, until)
    sent: int | None = last_event_id
    sent_model: Model | None = models.exact(key, last_event_id) if last_event_id is not None else None
    retry: int | None = retry_ms  # sent once, with the first event

    def catch_up(model: Model) -> ServerSentEvent | None:
        """The event that brings a page at ``sent`` to ``model`` (None: it shows that version already)."""
        nonlocal sent, sent_model
        if sent is None:
            event = _event("snapshot", model.version, model.encoded)
        elif model.version <= sent:
            return None
        elif sent_model is not None:
            event = _event("change", model.version, page_model.diff(sent_model.data, model.data))
        else:
            event = _event("jump", model.version, model.encoded)
        sent, sent_model = model.version, model
        return event

    backoff = 0.25
    model = start
    while True:
        try:
            if model is None:
                model = await models.read(user, account, since, until)
            event = catch_up(model)
            model = None
            if event is not None:
                event.retry, retry = retry, None
                yield event
            yield _event("status", sent, {"gateway": "live", "detail": ""}, retry)
            retry = None
            backoff = 0.25
            call = gateway.subscribe(user, account, since, until, from_version=sent)
            try:
                async for ev in call:
                    if ev.version <= sent:
                        continue
                    new = await models.read(user, account, since, until, at_least=ev.version)
                    if new.version <= sent:
                        continue
                    if ev.kind == ev.JUMP or sent_model is None:
                        yield _event("jump", new.version, new.encoded)
                    else:
                        yield _event("change", new.version, page_model.diff(sent_model.data, new.data))
                    sent, sent_model = new.version, new
            finally:
                call.cancel()
            await asyncio.sleep(backoff)  # the gateway ended the stream: open it again
        except grpc.aio.AioRpcError as exc:
            if not is_transient(exc):
                yield _event("status", sent, {"gateway": "error", "code": exc.code().name,
                                                   "detail": exc.details() or exc.code().name}, retry)
                return
            log.info("gateway stream for act_%s broke (%s); re-opening", account, exc.code().name)
            yield _event("status", sent, {"gateway": "reconnecting",
                                               "detail": f"the insights gateway is unreachable ({exc.code().name}); "
                                                         "showing the last data received, reconnecting"}, retry)
            retry = None
            model = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, resubscribe_max_s)


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
