"""The page at ``/ad-fatigue`` (the Vite build in ``web/dist``) and its one-time sign-in link."""

from __future__ import annotations

import html
import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from services.bff.problems import PROBLEM_SCHEMA, Problem
from services.bff.sessions import start_session
from services.bff.sign_in import SignInError, SignInUnavailable

log = logging.getLogger(__name__)
router = APIRouter()
PAGE = "/ad-fatigue"


@router.get("/", include_in_schema=False)
async def root() -> Response:
    return RedirectResponse(PAGE, status_code=307)


def _refused(request: Request, status: int, detail: str, kind: str) -> Response:
    """A refused sign-in: problem details, or for a browser following the link (``Accept: text/html``) the same
    words as a small HTML page (people click these links; raw JSON told them nothing)."""
    if "text/html" not in request.headers.get("accept", ""):
        raise Problem(status, detail, kind=kind)
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in refused</title></head>"
            f"<body><main><h1>Sign-in refused</h1><p>{html.escape(detail)}</p></main></body></html>")
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get(PAGE + "/sign-in", status_code=303, summary="Redeem a one-time sign-in link",
            responses={303: {"description": "signed in: on to the page"}, 400: PROBLEM_SCHEMA, 401: PROBLEM_SCHEMA,
                       503: PROBLEM_SCHEMA})
async def sign_in(request: Request, token: Annotated[str, Query(max_length=4096)],
                  next: Annotated[str, Query(max_length=512)] = PAGE) -> Response:
    """Starts a session from a link printed by ``adfatigue up`` / ``adfatigue sign-in`` (each link works
    once, until its ``exp``; a restart of the BFF keeps used links used). 401: expired, used or forged link;
    503: the used-links file cannot be read or written. Refusals are problem details, or a small HTML page with
    the same words when the request accepts text/html (a browser following the link). Production deployments
    sign in through the proxy instead."""
    if request.app.state.settings.sign_in != "link":
        return _refused(request, 400, "sign-in links are off here: sign in through your company's sign-in page",
                        "sign-in-links-off")
    try:
        user = request.app.state.sign_in_links.redeem(token)
    except SignInUnavailable as exc:  # sign_in.py logged why (the file's path and the OS error)
        return _refused(request, 503, str(exc), "sign-in-unavailable")
    except SignInError as exc:
        log.warning("sign-in link refused: %s", exc)  # never the link or its token (logs.py redacts them anyway)
        return _refused(request, 401, str(exc), "sign-in-link")
    start_session(request, user)
    log.info("signed in with a one-time link: %s (accounts %s, roles %s)", user.subject,
             ",".join(user.accounts) or "none", ",".join(user.roles) or "none")
    target = next if next.startswith(PAGE) and "//" not in next and "\\" not in next else PAGE
    return RedirectResponse(target, status_code=303)


def _dist(request: Request):
    dist = request.app.state.settings.web_dist
    if not (dist / "index.html").is_file():
        raise Problem(503, f"the page is not built ({dist}/index.html missing): run `npm ci && npm run build` "
                           "in web/ (adfatigue up does this)", kind="page-not-built")
    return dist


@router.get(PAGE, include_in_schema=False)
@router.get(PAGE + "/", include_in_schema=False)
async def page(request: Request) -> Response:
    return FileResponse(_dist(request) / "index.html", headers={"Cache-Control": "no-cache"})


@router.get(PAGE + "/assets/{name}", include_in_schema=False)
async def asset(request: Request, name: str) -> Response:
    assets = _dist(request) / "assets"
    shown = name if len(name) <= 80 else name[:80] + "…"
    try:  # a NUL or an over-long name is no asset either (the OS refuses it: ValueError / OSError)
        path = (assets / name).resolve()
        found = path.parent == assets.resolve() and path.is_file()
    except (ValueError, OSError):
        found = False
    if not found:
        raise Problem(404, f"no such asset: {shown!r} (reload the page: the build may have changed)")
    # file names carry a content hash (Vite): cache them for a year
    return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})
