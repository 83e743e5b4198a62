"""The v1 HTTP API (``/api/v1``). Every error is a problem details answer (see ``problems.py``)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
import grpc
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from services.bff import live_events
from services.bff.page_models import is_transient
from services.bff.problems import PROBLEM_SCHEMA, Problem, problem_from_rpc
from services.bff.requests_in import ACCOUNT_PATTERN, DATE_PATTERN, date_range, readable_account
from services.bff.requests_in import last_event_id as parse_last_event_id
from services.bff.schemas import Accounts, PageModel, RefreshResult, Session
from services.bff.sessions import end_session, require_csrf, session_ended, signed_in
from services.bff.users import User

router = APIRouter()
ERRORS = {code: PROBLEM_SCHEMA for code in (400, 401, 403, 404, 429, 503)}

Act = Annotated[str, Path(pattern=ACCOUNT_PATTERN, description='ad account id, "act_123" or "123"')]
Since = Annotated[str, Query(pattern=DATE_PATTERN, description="first day, YYYY-MM-DD in the account's time zone")]
Until = Annotated[str, Query(pattern=DATE_PATTERN, description="last day (inclusive), YYYY-MM-DD, >= since")]
SignedIn = Annotated[User, Depends(signed_in)]


def _what(account: str, since: str = "", until: str = "") -> str:
    return f"act_{account} {since}..{until}" if since else f"act_{account}"


@router.get("/session", response_model=Session, responses=ERRORS, summary="Who is signed in")
async def get_session(request: Request, user: SignedIn) -> Session:
    """The signed-in user, their accounts, and the CSRF token for state-changing requests. 401: not signed in."""
    return Session(user=user.subject, accounts=[a if a == "*" else f"act_{a}" for a in user.accounts],
                   operator=user.is_operator, csrf_token=request.session["csrf"])


@router.post("/session/sign-out", status_code=204, responses=ERRORS, summary="Sign out",
             dependencies=[Depends(require_csrf)])
async def sign_out(request: Request, user: SignedIn) -> Response:
    """Ends the session (needs ``X-CSRF-Token``); a copy of its cookie is refused afterwards (401)."""
    end_session(request)
    return Response(status_code=204)


@router.get("/accounts", response_model=Accounts, responses=ERRORS, summary="Ad accounts you may read")
async def list_accounts(request: Request, user: SignedIn) -> Accounts:
    """Name, currency and time zone of each ad account the signed-in user may read (gateway ListAccounts).
    503: the gateway is unreachable."""
    try:
        accounts = await request.app.state.gateway.list_accounts(user)
    except grpc.aio.AioRpcError as exc:
        raise problem_from_rpc(exc, "listing your ad accounts") from None
    return Accounts(accounts=[{"id": f"act_{a.account_id}", "name": a.name or f"act_{a.account_id}",
                               "currency": a.currency, "timezone": a.timezone_name, "version": a.version,
                               "known": a.known} for a in accounts])


@router.get("/accounts/{act}/fatigue", responses={200: {"model": PageModel}, **ERRORS},
            summary="The page model at one version")
async def get_fatigue(request: Request, user: SignedIn, act: Act, since: Since, until: Until) -> Response:
    """Every ad of the range with its level, score, components (before → after in human units), reasons,
    days to critical, spend and impressions, and daily series; summary and freshness — all at ``version``.

    400 bad dates or range (older than Meta's 37 months, until < since), 403 an account you may not read,
    404 an account Meta does not know, 429 Meta's rate limit with nothing cached (Retry-After), 503 gateway down.
    """
    account = readable_account(user, act)
    since, until = date_range(since, until)
    try:
        model = await request.app.state.models.read(user, account, since, until)
    except grpc.aio.AioRpcError as exc:
        raise problem_from_rpc(exc, _what(account, since, until)) from None
    return Response(model.encoded, media_type="application/json", headers={"X-Data-Version": str(model.version)})


@router.get("/accounts/{act}/events", responses={200: {"content": {"text/event-stream": {}},
                                                        "description": "snapshot, change, jump and status events"},
                                                   **ERRORS}, summary="Live page updates (Server-Sent Events)")
async def get_events(request: Request, user: SignedIn, act: Act, since: Since, until: Until,
                     last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
                     last_event_id: Annotated[str | None, Query(
                         description="the same as the Last-Event-ID header (for a new EventSource)")] = None):
    """``snapshot`` (whole page model), then ``change`` (ads that changed, summary, freshness), ``jump`` and
    ``status`` events, each with ``id: <version>``. Send ``Last-Event-ID`` to resume: only what changed after
    that version follows. 400: a Last-Event-ID that is not a number or is newer than the data."""
    account = readable_account(user, act)
    since, until = date_range(since, until)
    last = parse_last_event_id(last_event_id_header, last_event_id)
    settings = request.app.state.settings
    models = request.app.state.models
    try:
        start = await models.read(user, account, since, until)
    except grpc.aio.AioRpcError as exc:
        if last is None or not is_transient(exc):
            raise problem_from_rpc(exc, _what(account, since, until)) from None
        start = None  # resuming while the gateway is down: the stream says "reconnecting" until it is back
    if start is not None and last is not None and last > start.version:
        raise Problem(400, f"Last-Event-ID {last} is newer than the data (version {start.version}): "
                           "reload the page", kind="invalid-last-event-id")
    events = live_events.stream(request.app.state.feeds, user, account, since, until, start, last, settings.retry_ms,
                                signed_out=partial(session_ended, request))
    stop = anyio.Event()  # set by sse-starlette on shutdown: the stream then ends with a complete response
    return EventSourceResponse(live_events.until_stopped(events, stop), ping=settings.heartbeat_s,
                               headers={"X-Accel-Buffering": "no"}, shutdown_event=stop, shutdown_grace_period=3)


@router.post("/accounts/{act}/refresh", response_model=RefreshResult, responses=ERRORS,
             dependencies=[Depends(require_csrf)], summary="Refresh now (operators may force)")
async def refresh(request: Request, user: SignedIn, act: Act, since: Since, until: Until,
                  force: Annotated[bool, Query(description="refetch every day, due or not (operators only)")] = False
                  ) -> RefreshResult:
    """Asks the gateway to fetch the due days of the range from Meta now (``force``: every day; operators).
    Needs ``X-CSRF-Token``. 403 without it, or ``force`` without the operator role."""
    account = readable_account(user, act)
    since, until = date_range(since, until)
    if force and not user.is_operator:
        raise Problem(403, "a forced refresh is for operators: ask one, or refresh without force",
                      kind="operator-only")
    try:
        reply = await request.app.state.gateway.refresh(user, account, since, until, force)
    except grpc.aio.AioRpcError as exc:
        raise problem_from_rpc(exc, f"refresh of {_what(account, since, until)}") from None
    return RefreshResult(version=reply.version, rows_changed=reply.rows_changed, upstream_calls=reply.upstream_calls,
                         fetched_ranges=[{"since": r.since, "until": r.until} for r in reply.fetched_ranges])
