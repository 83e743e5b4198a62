"""Structured logs for every service: JSON lines, trace ids, one redaction filter, daily rotation.

``configure_logging(service_name)`` (called once at start, before anything logs) installs on the
root logger one handler — stderr, or ``LOG_FILE`` rotated at midnight UTC keeping
``LOG_RETENTION_DAYS`` (30) old files: the original design's 30-day retention — with:

* ``python-json-logger``'s formatter: one JSON object per line with ``timestamp`` (ISO 8601 UTC),
  ``level``, ``logger``, ``message``, ``service.name``, ``trace_id`` and ``span_id`` (hex, as
  OpenTelemetry writes them; empty outside a span), ``exc_info`` for tracebacks and any ``extra``;
* ``RedactionFilter`` on the handler, so every logger's records pass it (handler filters see
  propagated records; logger filters would not): bearer tokens and JWTs, Meta access tokens
  (``EAA…``) and ``access_token=`` / ``client_secret=`` / ``fb_exchange_token=`` parameters, the BFF's
  sign-in link tokens (``?token=``) and session cookie (``adfatigue_session=``), and the literal values
  of the secret settings (``JWT_HS256_SECRET``, ``META_ACCESS_TOKEN``, ``META_APP_SECRET``,
  ``ADFATIGUE_TOKEN``, each key of ``TOKEN_KEYS``, ``BFF_SESSION_SECRET``) become ``[REDACTED]`` in the
  message, the arguments, the traceback and every string ``extra`` field.

``LOG_FORMAT=text`` keeps the same filter with a plain one-line format (reading logs by eye);
``LOG_LEVEL`` sets the level (INFO). In Kubernetes the services log to stderr and the cluster's
log pipeline keeps them (k8s/README.md says how long it must).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Iterable, Mapping

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from services.common.settings import LoggingSettings

REDACTED = "[REDACTED]"
#: Environment variables whose values are secrets (TOKEN_KEYS is "kid:base64,kid:base64").
SECRET_VARIABLES = ("JWT_HS256_SECRET", "META_ACCESS_TOKEN", "META_APP_SECRET", "ADFATIGUE_TOKEN", "TOKEN_KEYS",
                    "BFF_SESSION_SECRET")
_PATTERNS = [
    # JWT (header.payload.sig); with +/= in the first part also a signed session cookie (base64 JSON.time.sig)
    re.compile(r"eyJ[A-Za-z0-9_+/=-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)((?:bearer|oauth)\s+)[A-Za-z0-9|._~+/=-]{8,}"),                # Authorization header values
    re.compile(r"EAA[A-Za-z0-9]{20,}"),                                             # Meta user / system tokens
    re.compile(r"(?i)((?:access_token|client_secret|fb_exchange_token|appsecret_proof|input_token)"
               r"[\"']?\s*[=:]\s*[\"']?)[^&\s\"',;]+"),                               # query / JSON values
    re.compile(r"([?&]token=)[^&\s\"',;#]+"),                                        # the BFF's sign-in links
    re.compile(r"(adfatigue_session=)[^;\s\"',]+"),                                  # the BFF's session cookie
]
#: Secrets this process has seen (env secrets, every token the vault decrypted or Meta issued), newest last.
_KNOWN_SECRETS: dict[str, None] = {}
MAX_KNOWN_SECRETS = 10_000


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` so every later ``redact`` (logs, error messages) hides it. Strings shorter
    than 4 characters are ignored (they would redact ordinary words); the newest 10,000 are kept."""
    if not secret or len(secret) < 4:
        return
    _KNOWN_SECRETS.pop(secret, None)
    _KNOWN_SECRETS[secret] = None
    while len(_KNOWN_SECRETS) > MAX_KNOWN_SECRETS:
        del _KNOWN_SECRETS[next(iter(_KNOWN_SECRETS))]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets replaced by ``[REDACTED]``: ``secrets``, every registered secret, JWTs,
    Bearer / OAuth header values, Meta ``EAA…`` tokens and ``access_token=`` (and the like) values."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    for secret in sorted({*secrets, *_KNOWN_SECRETS}, key=len, reverse=True):
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    return text
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The literal secrets to redact, from the environment (values shorter than 6 characters are ignored)."""
    env = os.environ if env is None else env
    values = []
    for name in SECRET_VARIABLES:
        value = env.get(name, "")
        if name == "TOKEN_KEYS":
            values += [part.partition(":")[2].strip() for part in value.split(",")]
        else:
            values.append(value.strip())
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


class RedactionFilter(logging.Filter):
    """Replaces secrets in a record (message, arguments, traceback, extras) with ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        for secret in secrets:
            register_secret(secret)

    @staticmethod
    def redact(text: str) -> str:
        return redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = str(record.msg)
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class TraceContextFilter(logging.Filter):
    """Adds ``service.name``, ``trace_id`` and ``span_id`` (of the current OpenTelemetry span) to records."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else ""
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else ""
        setattr(record, "service.name", self.service_name)
        return True


def _utc_iso(record: logging.LogRecord) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")


class _Json(JsonFormatter):
    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["timestamp"] = _utc_iso(record)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name


def log_handler(service_name: str, settings: LoggingSettings | None = None) -> logging.Handler:
    """The one handler of a service (see the module doc)."""
    settings = settings or LoggingSettings.from_env()
    if settings.log_file:
        path = Path(settings.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.TimedRotatingFileHandler(
            path, when="midnight", utc=True, backupCount=settings.log_retention_days, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_Json("%(message)s %(trace_id)s %(span_id)s %(service.name)s"))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [trace_id=%(trace_id)s] %(message)s"))
    handler.addFilter(TraceContextFilter(service_name))
    handler.addFilter(RedactionFilter(secret_values()))
    return handler


def configure_logging(service_name: str, settings: LoggingSettings | None = None) -> logging.Handler:
    """Replace the root logger's handlers with ``log_handler``; returns it. ``settings``: the service's
    model (every service model includes the shared ``LoggingSettings`` part); default: the environment."""
    settings = settings or LoggingSettings.from_env()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = log_handler(service_name, settings)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.captureWarnings(True)
    return handler
