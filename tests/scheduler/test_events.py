"""The "refresh completed" event reaches its sinks: a log line, and a Slack-compatible webhook (local server)."""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web

from services.scheduler.events import CycleCompleted, LogSink, Notifier, WebhookSink, build_notifier

EVENT = CycleCompleted(cycle=7, leader="sched-a", fencing_token=3, started="2026-03-04T12:00:00+00:00",
                       finished="2026-03-04T12:00:04+00:00", duration_s=4.0, refreshed_items=5, accounts_refreshed=3,
                       deferred_items=2, failed_items=1, calls_spent=9, budget_left=120, scheduler_share=150,
                       errors=("act_1 2026-03-01..2026-03-03: UNAVAILABLE: Meta down",))


@contextlib.asynccontextmanager
async def webhook_server(status: int = 200):
    """A tiny aiohttp server on a free port recording each JSON body posted to /hook."""
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=status, text="ok" if status == 200 else "no")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)  # the receiving side's log is not ours
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await runner.cleanup()


def test_the_event_says_what_happened_in_one_line():
    text = EVENT.text()
    assert text.startswith("adfatigue scheduler: refresh cycle 7 completed in 4.0 s")
    for words in ("5 range(s) of 3 account(s) refreshed", "9 Meta call(s)", "2 waiting for budget", "1 failed",
                  "budget left 120 of 150/h", "first error: act_1"):
        assert words in text
    assert EVENT.as_dict()["severity"] == "info" and EVENT.as_dict()["kind"] == "refresh_completed"


async def test_the_webhook_sink_posts_slack_compatible_json():
    async with webhook_server() as (url, received):
        notifier = build_notifier(url, timeout_s=5)
        try:
            await notifier.publish(EVENT)
        finally:
            await notifier.aclose()
    assert received == [{"text": EVENT.text()}]
    assert notifier.failures == 0 and notifier.published == 1


async def test_a_failing_webhook_is_logged_without_its_url_and_never_raises(caplog):
    async with webhook_server(status=500) as (url, received):
        notifier = Notifier([WebhookSink(url + "?secret=abc"), LogSink()])
        with caplog.at_level(logging.INFO):
            await notifier.publish(EVENT)
        await notifier.aclose()
    assert len(received) == 1 and notifier.failures == 1
    assert "HTTP 500" in caplog.text and "secret=abc" not in caplog.text
    assert EVENT.text() in caplog.text  # the log sink still got it


async def test_an_unreachable_webhook_counts_as_a_failure():
    async with webhook_server() as (url, _):
        pass  # the server is gone: connection refused
    notifier = Notifier([WebhookSink(url, timeout_s=2)])
    await notifier.publish(EVENT)
    await notifier.aclose()
    assert notifier.failures == 1


def test_without_a_url_only_the_log_sink_is_used():
    assert [type(s).__name__ for s in build_notifier("").sinks] == ["LogSink"]
