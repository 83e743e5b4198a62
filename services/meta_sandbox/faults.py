"""Scripted faults: the next N Graph requests (of one account, or any) fail a chosen way.

Posted as JSON to ``POST /_sandbox/faults`` (a single object or a list)::

    {"account_id": "act_123" | null,   # null/absent = any account (global)
     "endpoint": "insights" | "account" | "async" | "token" | "any",   # default "insights" ("job_failed": "async");
                                       # "token" = oauth/access_token and debug_token
     "count": 3,                       # how many matching requests it hits (default 1)
     "skip": 2,                        # let this many matching requests through first (default 0)
     "kind": "error" | "expired_token" | "garbage" | "http" | "latency" | "disconnect" | "job_failed"
             | "endless_paging"     # paging.next is always there: past the last row, empty pages with new cursors
             | "repeat_page",       # past the last page, paging.next serves the last page again under new cursors
     "code": 17, "subcode": 2446079, "http_status": 400,   # kind "error"
     "message": "...", "is_transient": true, "type": "OAuthException",
     "regain_minutes": 2,              # put in X-Business-Use-Case-Usage on that response
     "latency_ms": 250,                # delay before answering (any kind)
     "field": "impressions", "value": "abc",   # kind "garbage": first row's field replaced
     "body": "<html>bad gateway</html>"}       # kind "http": raw non-JSON body

Account-specific faults are used before global ones; within each, first in
first out. ``DELETE /_sandbox/faults`` clears them; ``GET /_sandbox/faults``
lists what is pending.

Default messages follow Meta's wording where known (META_GRAPH_API.md §3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from services.common.account_ids import normalise_account_id

KINDS = ("error", "expired_token", "garbage", "http", "latency", "disconnect", "job_failed", "endless_paging",
         "repeat_page")
#: Kinds that change an insights page's ``paging`` instead of failing the request.
PAGING_KINDS = ("endless_paging", "repeat_page")
ENDPOINTS = ("insights", "account", "async", "token", "any")

#: code -> (default subcode, HTTP status, message, is_transient)
DEFAULT_ERRORS: dict[int, tuple[int | None, int, str, bool | None]] = {
    1: (99, 500, "An unknown error occurred", None),
    2: (1504043, 500, "An unexpected error has occurred. Please retry your request later.", True),
    4: (1504039, 400, "(#4) Application request limit reached", True),
    10: (None, 400, "(#10) Application does not have permission for this action", None),
    17: (2446079, 400, "(#17) User request limit reached", True),
    32: (None, 400, "(#32) Page request limit reached", True),
    100: (None, 400, "(#100) Invalid parameter", None),
    190: (463, 400, "Error validating access token: Session has expired.", None),
    200: (None, 400, "(#200) Ad account owner has NOT grant ads_management or ads_read permission", None),
    613: (1487742, 400, "(#613) Calls to this api have exceeded the rate limit.", True),
    2500: (None, 400, "An active access token must be used to query information about the current user.", None),
    2635: (None, 400, "(#2635) You are calling a deprecated version of the Ads API. Please update to the latest version.", None),
    80000: (2446079, 400, "(#80000) There have been too many calls from this ad-account. Wait a bit and try again.", True),
}
SUBCODE_MESSAGES = {
    (100, 1487534): "Please reduce the amount of data you're asking for, then retry your request",
    (100, 1504018): "Your request timed out. Please try again with a smaller date range or fewer ad accounts.",
    (100, 33): "Unsupported get request. Object does not exist, cannot be loaded due to missing permissions, "
               "or does not support this operation.",
    (2, 1504038): "Service temporarily unavailable: the request timed out",
}


class FaultSpecError(ValueError):
    """A posted fault does not make sense; the message says which key."""


@dataclass
class Fault:
    """One scripted fault; ``remaining`` counts down as requests hit it."""

    kind: str = "error"
    remaining: int = 1
    skip: int = 0
    account_id: str | None = None
    endpoint: str = "insights"
    code: int | None = None
    subcode: int | None = None
    http_status: int | None = None
    message: str | None = None
    is_transient: bool | None = None
    type: str = "OAuthException"
    regain_minutes: int | None = None
    latency_ms: int = 0
    field: str = "impressions"
    value: Any = "abc"
    body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>"

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> "Fault":
        """Validate a posted fault; raises FaultSpecError."""
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault is a JSON object")
        known = {"kind", "count", "skip", "account_id", "endpoint", "code", "subcode", "http_status", "message",
                 "is_transient", "type", "regain_minutes", "latency_ms", "field", "value", "body"}
        unknown = set(spec) - known
        if unknown:
            raise FaultSpecError(f"unknown fault key(s) {sorted(unknown)}; known: {sorted(known)}")
        kind = spec.get("kind", "error")
        if kind not in KINDS:
            raise FaultSpecError(f"kind={kind!r}; use one of {KINDS}")
        endpoint = spec.get("endpoint", "async" if kind == "job_failed" else "insights")
        if endpoint not in ENDPOINTS:
            raise FaultSpecError(f"endpoint={endpoint!r}; use one of {ENDPOINTS}")
        count = spec.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise FaultSpecError("count must be an integer >= 1")
        account = spec.get("account_id")
        try:
            account = normalise_account_id(account) if account is not None else None
        except ValueError as exc:
            raise FaultSpecError(str(exc)) from None
        if kind == "error" and not isinstance(spec.get("code"), int):
            raise FaultSpecError("kind 'error' needs an integer 'code'")
        for key in ("subcode", "http_status", "regain_minutes", "latency_ms", "skip"):
            if key in spec and spec[key] is not None and (not isinstance(spec[key], int) or spec[key] < 0):
                raise FaultSpecError(f"{key} must be a non-negative integer")
        fault = cls(kind=kind, remaining=count, account_id=account, endpoint=endpoint)
        for key in ("skip", "code", "subcode", "http_status", "message", "is_transient", "type", "regain_minutes",
                    "latency_ms", "field", "value", "body"):
            if key in spec and spec[key] is not None:
                setattr(fault, key, spec[key])
        if kind == "http" and fault.http_status is None:
            fault.http_status = 502
        return fault

    def error_parts(self) -> tuple[int, int | None, int, str, bool | None]:
        """(code, subcode, http_status, message, is_transient) for kinds 'error' / 'expired_token'."""
        code = 190 if self.kind == "expired_token" else int(self.code or 1)
        d_sub, d_status, d_msg, d_transient = DEFAULT_ERRORS.get(code, (None, 400, f"(#{code}) Error", None))
        if 80000 <= code <= 80008 and code not in DEFAULT_ERRORS:
            d_sub, d_status, d_msg, d_transient = DEFAULT_ERRORS[80000]
            d_msg = d_msg.replace("80000", str(code))
        subcode = self.subcode if self.subcode is not None else d_sub
        message = self.message or SUBCODE_MESSAGES.get((code, subcode), d_msg)
        status = self.http_status if self.http_status is not None else d_status
        transient = self.is_transient if self.is_transient is not None else d_transient
        return code, subcode, status, message, transient

    def describe(self) -> dict[str, Any]:
        """The fault as JSON-ready dict (for ``GET /_sandbox/faults``)."""
        return asdict(self)


class FaultBook:
    """Pending faults, consumed by matching requests."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault after those already pending."""
        self._faults.append(fault)

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        """Pending faults in the order they will be used."""
        return [f.describe() for f in self._faults]

    def take(self, account_id: str | None, endpoint: str) -> Fault | None:
        """The fault that hits this request (and count it), or None."""
        for want_account in (True, False):
            for fault in self._faults:
                if fault.endpoint not in ("any", endpoint):
                    continue
                if want_account and (account_id is None or fault.account_id != account_id):
                    continue
                if not want_account and fault.account_id is not None:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None
