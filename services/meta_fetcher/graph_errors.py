"""Graph API errors: what Meta said, what class of failure it is, and the gRPC status we answer.

Classes (META_GRAPH_API.md §3 error table; retry design from the connectors cited there):

- ``retry``: codes 1 and 2, any error with ``is_transient: true``, HTTP 5xx
  without a Graph body, timeouts and connection failures -> back off with
  jitter and retry (3 retries); then UNAVAILABLE.
- ``throttled``: codes 4, 17, 32, 613, 80000-80008 (and their rate subcodes
  2446079, 1487742, 1504022, 1504039), HTTP 429 -> wait
  ``estimated_time_to_regain_access`` (BUC header, minutes) when it is short,
  else stop; then RESOURCE_EXHAUSTED saying when to retry. Our own rate
  budget and usage-header pauses are in this class too, refused before any call.
- ``shrink``: 100/1487534 (too much data), 100/1504018 and 2/1504038 (timeouts),
  code 1 "Please reduce the amount of data" -> ask again for less (halve ``limit``);
  when it cannot shrink further, run an async report (§2); if that is off,
  UNAVAILABLE with advice to ask a shorter range. A failed async report
  (-2/2490547) or one not done in time -> UNAVAILABLE "retry later".
- ``token_invalid``: 190 (458/459/460/463/464/467), 102, 104 (no token), 2500 -> never retried;
  FAILED_PRECONDITION "token for act_X expired or invalid — re-authorise".
- ``permanent``: 100/33 -> NOT_FOUND; 10 and 200-299 -> PERMISSION_DENIED;
  2635 (deprecated version) -> FAILED_PRECONDITION; 3018 (older than 37 months)
  and other 100s -> INVALID_ARGUMENT; a page that does not parse -> DATA_LOSS;
  anything else unknown -> FAILED_PRECONDITION with Meta's message.

Messages never contain access tokens or app secrets (``redact``).
"""

from __future__ import annotations

import enum

import grpc

# One redaction for logs and error messages, shared by every service (services/common/logs.py).
from services.common.logs import MAX_KNOWN_SECRETS, redact, register_secret  # noqa: F401


class ErrorClass(str, enum.Enum):
    """What to do about a failure (module docstring)."""

    RETRY = "retry"
    THROTTLED = "throttled"
    SHRINK = "shrink"
    TOKEN_INVALID = "token_invalid"
    PERMANENT = "permanent"


THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80009)})
THROTTLE_SUBCODES = frozenset({2446079, 1487742, 1504022, 1504039})
TOKEN_CODES = frozenset({102, 104, 190, 2500})  # 104: no access token was sent
TOKEN_SUBCODES = frozenset({458, 459, 460, 463, 464, 467})
SHRINK_PAIRS = frozenset({(100, 1487534), (100, 1504018), (2, 1504038)})
PERMISSION_CODES = frozenset({10, *range(200, 300)})


def classify(code: int | None, subcode: int | None = None, *, http_status: int = 400,
             is_transient: bool | None = None, message: str = "") -> ErrorClass:
    """The failure class of one Graph error (see the module docstring for the table)."""
    if code in TOKEN_CODES or (code is not None and subcode in TOKEN_SUBCODES):
        return ErrorClass.TOKEN_INVALID
    if (code, subcode) in SHRINK_PAIRS or (code == 1 and "reduce the amount of data" in message.lower()):
        return ErrorClass.SHRINK
    if code in THROTTLE_CODES or subcode in THROTTLE_SUBCODES or (code is None and http_status == 429):
        return ErrorClass.THROTTLED
    if code in (1, 2) or is_transient:
        return ErrorClass.RETRY
    if code is None and http_status >= 500:
        return ErrorClass.RETRY
    return ErrorClass.PERMANENT


class GraphError(Exception):
    """Anything the Graph client raises. ``grpc_status`` says how to answer the caller."""

    error_class: ErrorClass = ErrorClass.PERMANENT
    retry_after_s: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = 0

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        """(status code, actionable message) for a caller asking about ``account`` (``act_...``)."""
        return grpc.StatusCode.UNAVAILABLE, f"Meta call for {account} failed: {self.message}"


class GraphApiError(GraphError):
    """Meta answered with an error (a Graph error body, or a bare HTTP error status)."""

    def __init__(self, *, http_status: int, code: int | None, subcode: int | None = None, message: str = "",
                 type_: str | None = None, is_transient: bool | None = None, fbtrace_id: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message or f"HTTP {http_status}")
        self.http_status, self.code, self.subcode = http_status, code, subcode
        self.type_, self.is_transient, self.fbtrace_id = type_, is_transient, fbtrace_id
        self.retry_after_s = retry_after_s
        self.error_class = classify(code, subcode, http_status=http_status, is_transient=is_transient,
                                    message=message)

    @classmethod
    def from_response(cls, http_status: int, body: object, retry_after_s: float | None = None) -> "GraphApiError":
        """Build from an HTTP status and the decoded JSON body (any shape)."""
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return cls(http_status=http_status, code=None, message=f"HTTP {http_status} without a Graph error body",
                       retry_after_s=retry_after_s)

        def _int(v: object) -> int | None:
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        return cls(http_status=http_status, code=_int(err.get("code")), subcode=_int(err.get("error_subcode")),
                   message=str(err.get("message") or ""), type_=err.get("type"),
                   is_transient=err.get("is_transient") if isinstance(err.get("is_transient"), bool) else None,
                   fbtrace_id=err.get("fbtrace_id") if isinstance(err.get("fbtrace_id"), str) else None,
                   retry_after_s=retry_after_s)

    @property
    def code_text(self) -> str:
        """``code 17/2446079`` or ``HTTP 502`` when Meta sent no code."""
        if self.code is None:
            return f"HTTP {self.http_status}"
        return f"code {self.code}" + (f"/{self.subcode}" if self.subcode is not None else "")

    def __str__(self) -> str:
        return f"{self.message} ({self.code_text}, HTTP {self.http_status})"

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        what = f"Meta said: {self.message!r} ({self.code_text})"
        cls = self.error_class
        if cls is ErrorClass.TOKEN_INVALID:
            return (grpc.StatusCode.FAILED_PRECONDITION,
                    f"token for {account} expired or invalid — re-authorise ({what})")
        if cls is ErrorClass.THROTTLED:
            after = self.retry_after_s
            when = f"retry after {round(after)} s" if after is not None else "retry later"
            return grpc.StatusCode.RESOURCE_EXHAUSTED, f"Meta rate limit reached for {account}; {when} ({what})"
        if cls is ErrorClass.RETRY:
            return (grpc.StatusCode.UNAVAILABLE,
                    f"Meta is unavailable for {account} after {self.attempts} attempt(s); retry later ({what})")
        if cls is ErrorClass.SHRINK:
            return (grpc.StatusCode.UNAVAILABLE,
                    f"Meta cannot answer {account} even at the smallest page size; ask for a shorter date range "
                    f"({what})")
        if self.code == 100 and self.subcode == 33:
            return (grpc.StatusCode.NOT_FOUND,
                    f"Meta does not know ad account {account}, or the token cannot see it ({what})")
        if self.code in PERMISSION_CODES:
            return (grpc.StatusCode.PERMISSION_DENIED,
                    f"the token may not read {account}: grant ads_read on this ad account ({what})")
        if self.code == 2635:
            return (grpc.StatusCode.FAILED_PRECONDITION,
                    f"the configured Graph API version is no longer served for {account}: set --api-version to a "
                    f"supported version such as v25.0 ({what})")
        if self.code == 100 and "appsecret_proof" in self.message:
            return (grpc.StatusCode.FAILED_PRECONDITION,
                    f"Meta rejected our appsecret_proof for {account}: check META_APP_SECRET ({what})")
        if self.code in (100, 3018):
            return grpc.StatusCode.INVALID_ARGUMENT, f"Meta rejected the request for {account} ({what})"
        return grpc.StatusCode.FAILED_PRECONDITION, f"Meta refused the request for {account} ({what})"


class GraphTransportError(GraphError):
    """No usable HTTP answer: timeout, connection refused/reset, protocol error."""

    error_class = ErrorClass.RETRY

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        return (grpc.StatusCode.UNAVAILABLE,
                f"Meta is unreachable for {account} after {self.attempts} attempt(s); retry later ({self.message})")


class GraphPageError(GraphError):
    """A page does not parse or fails validation; nothing of the fetch is returned."""

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        return (grpc.StatusCode.DATA_LOSS,
                f"Meta sent a page for {account} that does not parse; nothing was returned: {self.message}")


class GraphPagingError(GraphError):
    """Paging misbehaved: a cursor came back twice, a foreign ``next`` host, or too many pages."""

    def __init__(self, message: str, *, loop: bool) -> None:
        super().__init__(message)
        self.loop = loop

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        if self.loop:
            return (grpc.StatusCode.DATA_LOSS,
                    f"Meta's paging for {account} went wrong; nothing was returned: {self.message}")
        return grpc.StatusCode.UNAVAILABLE, f"fetch for {account} stopped: {self.message}; ask for a shorter range"


class GraphPagingCapError(GraphPagingError):
    """Meta's paging did not end within the pages the query can rightly take (``PageReader.page_cap``).

    Its own class so the caller is told what happened (not a budget or an
    outage message): only the pages actually sent were spent of the shared
    budget, so other accounts go on. DATA_LOSS, like the other paging
    faults: the answer is unusable as sent, nothing is stored, and the code
    is not one that channels retry on their own (they retry UNAVAILABLE,
    ``services.common.grpc_server``), so no further pages are spent.
    """

    def __init__(self, account_id: str, pages: int, limit: int, what: str = "") -> None:
        self.account_id, self.pages, self.limit = account_id, pages, limit
        super().__init__(f"Meta's paging did not end after {pages} pages of {limit} rows for act_{account_id}"
                         + (f" ({what})" if what else ""), loop=False)

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        return (grpc.StatusCode.DATA_LOSS,
                f"{self.message}; stopped there to protect the call budget (nothing was stored); retry later or ask "
                "for a shorter range")


class GraphAsyncJobError(GraphError):
    """An async report run failed, was skipped or did not finish in time (META_GRAPH_API.md §2: -2/2490547)."""

    error_class = ErrorClass.RETRY

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        return (grpc.StatusCode.UNAVAILABLE,
                f"Meta's async report for {account} did not complete; retry later or ask for a shorter range "
                f"({self.message})")


class CallRefused(GraphError):
    """Refused before calling Meta: our rate budget is spent or usage headers ask us to pause."""

    error_class = ErrorClass.THROTTLED

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def grpc_status(self, account: str) -> tuple[grpc.StatusCode, str]:
        return (grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.message}; no call was made for {account}; retry after {max(1, round(self.retry_after_s))} s")
