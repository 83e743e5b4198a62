"""JSON log lines, the one redaction filter, daily rotation keeping 30 files (services/common/logs.py)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.common import logs
from services.common.logs import RedactionFilter, log_handler, redact, register_secret, secret_values
from services.common.settings import LoggingSettings


@pytest.fixture
def logger(tmp_path):
    """A logger writing through the services' handler into tmp_path/svc.jsonl; yields (logger, path)."""
    path = tmp_path / "svc.jsonl"
    handler = log_handler("svc", LoggingSettings(log_file=str(path)))
    log = logging.getLogger(f"test.logs.{id(path)}")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log, path
    log.removeHandler(handler)
    handler.close()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_json_object_per_line_with_service_and_trace_ids(logger):
    log, path = logger
    log.info("plain %s", "message", extra={"account_id": "1001"})
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        log.warning("inside a span")
    first, second = lines(path)
    assert first["message"] == "plain message" and first["level"] == "INFO" and first["service.name"] == "svc"
    assert first["account_id"] == "1001" and first["trace_id"] == "" and first["timestamp"].endswith("+00:00")
    ctx = span.get_span_context()
    assert second["trace_id"] == format(ctx.trace_id, "032x") and second["span_id"] == format(ctx.span_id, "016x")


JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyIiwiYWNjb3VudHMiOlsiKiJdfQ."
       "c2lnbmF0dXJlLW9mLXRoZS10b2tlbg")
META = "EAAGm0PX4ZCpsBAKZC" + "x" * 40


def _session_cookie() -> str:
    """A cookie as the BFF's SessionMiddleware signs it: base64 JSON (standard alphabet: + / =), time, signature."""
    import base64
    import json as json_

    from itsdangerous import TimestampSigner

    data = base64.b64encode(json_.dumps({"user": {"sub": "ann>?~", "accounts": ["*"]}, "csrf": "x" * 43}).encode())
    cookie = TimestampSigner("session-secret-of-the-bff").sign(data).decode()
    assert "+" in cookie.split(".")[0] or "/" in cookie.split(".")[0] or "=" in cookie.split(".")[0]
    return cookie


SESSION_COOKIE = _session_cookie()


@pytest.mark.parametrize("text, hidden", [
    (f"authorization: Bearer {JWT}", JWT),
    (f"token {JWT} expired", JWT),
    (f"GET https://graph.facebook.com/v23.0/act_1?access_token={META}&fields=spend", META),
    (f'{{"access_token": "{META}"}}', META),
    (f"meta said no to {META}", META),
    ("GET /oauth/access_token?client_secret=s3cr3tvalue&fb_exchange_token=abcdef123", "s3cr3tvalue"),
    ("GET /ad-fatigue/sign-in?token=opaque-one-time-value&next=/ad-fatigue", "opaque-one-time-value"),
    ("cookie: adfatigue_session=c2Vzc2lvbi1ieXRlcw; theme=dark", "c2Vzc2lvbi1ieXRlcw"),
    (f"the cookie {SESSION_COOKIE} was refused", SESSION_COOKIE),
])
def test_redact_hides_tokens_by_shape(text, hidden):
    out = redact(text)
    assert hidden not in out and "[REDACTED]" in out


def test_the_filter_hides_secrets_in_message_args_traceback_and_extras(logger, monkeypatch):
    log, path = logger
    monkeypatch.setenv("JWT_HS256_SECRET", "local-signing-secret-123")
    key = "q2dGZpYmVyLWtleS1vZi10aGlydHktdHdvLWJ5dGVzLWxvbmc="
    monkeypatch.setenv("TOKEN_KEYS", f"k1:{key}")
    for secret in secret_values():
        register_secret(secret)
    try:
        raise ValueError(f"decrypt with {key} failed")
    except ValueError:
        log.exception("vault: %s", "local-signing-secret-123", extra={"header": f"Bearer {JWT}"})
    text = path.read_text()
    for secret in ("local-signing-secret-123", key, JWT):
        assert secret not in text
    record = lines(path)[0]
    assert record["message"] == "vault: [REDACTED]" and "[REDACTED]" in record["exc_info"]
    assert record["header"] == "Bearer [REDACTED]"


def test_the_filter_is_on_the_handler_so_every_logger_passes_it(logger):
    log, path = logger
    child = logging.getLogger(log.name + ".httpx")   # records of child loggers propagate to the handler
    child.debug("HTTP Request: GET http://x/?access_token=%s", META)
    assert META not in path.read_text()
    assert any(isinstance(f, RedactionFilter) for f in log.handlers[0].filters)


def test_short_values_are_not_treated_as_secrets(monkeypatch):
    monkeypatch.setenv("META_ACCESS_TOKEN", "abc")
    assert "abc" not in secret_values()


def test_files_rotate_daily_and_30_are_kept(tmp_path):
    path = tmp_path / "svc.jsonl"
    handler = log_handler("svc", LoggingSettings(log_file=str(path)))
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    assert handler.when == "MIDNIGHT" and handler.utc and handler.backupCount == 30
    # 35 days of old files, then a rollover: the 30 most recent stay
    for day in range(1, 36):
        old = tmp_path / f"svc.jsonl.2026-10-{day:02d}" if day <= 31 else tmp_path / f"svc.jsonl.2026-11-{day - 31:02d}"
        old.write_text("{}\n")
        os.utime(old, (time.time() - 86400 * (40 - day),) * 2)
    log = logging.getLogger("test.logs.rotation")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("before midnight")
        handler.rolloverAt = int(time.time()) - 1   # midnight has passed
        log.warning("after midnight")
    finally:
        log.removeHandler(handler)
        handler.close()
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("svc.jsonl."))
    assert len(rotated) == 30 and "svc.jsonl.2026-10-01" not in rotated
    assert "after midnight" in path.read_text() and "before midnight" not in path.read_text()


def test_text_format_keeps_the_filter(tmp_path):
    path = tmp_path / "svc.log"
    handler = log_handler("svc", LoggingSettings(log_file=str(path), log_format="text"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (META,), None)
    handler.handle(record)
    handler.close()
    assert META not in path.read_text() and "[REDACTED]" in path.read_text()


def test_configure_logging_replaces_the_root_handlers(monkeypatch, tmp_path):
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        handler = logs.configure_logging("svc", LoggingSettings.from_env({"LOG_FILE": str(tmp_path / "a.jsonl"), "LOG_LEVEL": "warning"}))
        assert root.handlers == [handler] and root.level == logging.WARNING
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)
