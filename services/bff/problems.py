"""Errors as HTTP problem details (RFC 9457, ``application/problem+json``).

gRPC status -> HTTP status follows Google's published mapping (google/rpc/code.proto):
INVALID_ARGUMENT/FAILED_PRECONDITION/OUT_OF_RANGE 400, UNAUTHENTICATED 401,
PERMISSION_DENIED 403, NOT_FOUND 404, ABORTED/ALREADY_EXISTS 409,
RESOURCE_EXHAUSTED 429 (with ``Retry-After``), CANCELLED 499, UNIMPLEMENTED 501,
UNAVAILABLE 503 (with ``Retry-After``), DEADLINE_EXCEEDED 504 (with ``Retry-After``); anything else 500.
"""

from __future__ import annotations

import logging
import uuid

from http import HTTPStatus

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.error_boundary import answered_by_our_server

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://adfatigue.dev/problems/"

GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class Problem(Exception):
    """An answer that is an error: ``status``, a short ``title``, a ``detail`` a person can act on."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, kind: str | None = None,
                 headers: dict[str, str] | None = None, **extra):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or (HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error")
        self.kind = kind or self.title.lower().replace(" ", "-")
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str) -> dict:
        return {"type": TYPE_BASE + self.kind, "title": self.title, "status": self.status, "detail": self.detail,
                "instance": instance, **self.extra}


log = logging.getLogger(__name__)

def problem_from_rpc(exc: grpc.aio.AioRpcError, what: str) -> Problem:
    """The problem for a failed gateway call; ``what`` names the request ("act_1 2026-01-01..2026-01-31")."""
    code = exc.code()
    status = GRPC_TO_HTTP.get(code, 500)
    # the gateway's own message when it answered (its error boundary keeps internals out); a transport
    # failure's text (core error strings, addresses) is logged, never shown
    details = exc.details() if answered_by_our_server(exc) and exc.details() else ""
    if not details:
        log.warning("gateway call %s failed in transport: %s %s", what, code.name, exc.details())
    headers = {}
    if status in (429, 503):
        retry = 60 if status == 429 else 5
        for key, value in (exc.trailing_metadata() or ()):
            if key == "retry-after-s":
                try:
                    retry = max(1, int(float(value)))
                except ValueError:
                    pass
        headers["Retry-After"] = str(retry)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        headers["Retry-After"] = "5"
        if not details or details.lower() == "deadline exceeded":  # our own deadline ran out
            details = ("the insights gateway did not answer in time (scoring or a fetch from Meta may still be "
                       "running); retry in a few seconds — the answer is usually ready then")
    elif not details and code == grpc.StatusCode.UNAVAILABLE:
        details = "the insights gateway cannot be reached (restarting or down); try again in a few seconds"
    elif not details:
        details = f"the insights gateway call ended with {code.name}"
    return Problem(status, f"{what}: {details}", kind=code.name.lower().replace("_", "-"), headers=headers,
                   grpc_status=code.name)


#: Longest request path echoed in a problem (``instance``, and ``detail`` of 404 / 405); longer ones are cut.
PATH_SHOWN_MAX = 200


def shown_path(request: Request) -> str:
    """The request's path as a problem echoes it: at most PATH_SHOWN_MAX characters (a 40 KB path is not
    sent back 40 KB larger)."""
    path = request.url.path
    return path if len(path) <= PATH_SHOWN_MAX else path[:PATH_SHOWN_MAX] + "…"


def _response(request: Request, problem: Problem) -> JSONResponse:
    return JSONResponse(problem.body(shown_path(request)), status_code=problem.status, headers=problem.headers,
                        media_type=PROBLEM_JSON)


async def on_problem(request: Request, exc: Problem) -> JSONResponse:
    return _response(request, exc)


async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"where": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
              for e in exc.errors()]
    text = "; ".join(f"{e['where']}: {e['message']}" for e in errors) or "invalid request"
    return _response(request, Problem(400, f"bad request: {text}", kind="invalid-request", errors=errors))


async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {shown_path(request)} (the API is under /api/v1/)"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {shown_path(request)}"
    return _response(request, Problem(exc.status_code, detail, headers=dict(exc.headers or {})))


async def on_bug(request: Request, exc: Exception) -> JSONResponse:
    """A bug: the log has the exception under a reference the answer gives (never the exception's name)."""
    reference = uuid.uuid4().hex[:12]
    log.error("%s %s: internal error, reference %s", request.method, shown_path(request), reference, exc_info=exc)
    return _response(request, Problem(500, f"internal error (a bug), reference {reference}: please report it "
                                           "with that reference", kind="internal"))


def install(app) -> None:
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)


#: OpenAPI description of an error answer (referenced by every endpoint).
PROBLEM_SCHEMA = {
    "description": "problem details (RFC 9457)",
    "content": {PROBLEM_JSON: {"schema": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                       "detail": {"type": "string"}, "instance": {"type": "string"}},
    }}},
}
