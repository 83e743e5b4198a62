"""The page at ``/ad-fatigue`` (the Vite build in ``web/dist``) and its one-time sign-in link."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from services.bff.problems import PROBLEM_SCHEMA, Problem
from services.bff.sessions import start_session
from services.bff.sign_in import SignInError, SignInUnavailable

log = logging.getLogger(__name__)
router = APIRouter()
PAGE = "/ad-fatigue"


@router.get("/", include_in_schema=False)
async def root() -> Response:
    return RedirectResponse(PAGE, status_code=307)


@router.get(PAGE + "/sign-in", status_code=303, summary="Redeem a one-time sign-in link",
            responses={303: {"description": "signed in: on to the page"}, 400: PROBLEM_SCHEMA, 401: PROBLEM_SCHEMA,
                       503: PROBLEM_SCHEMA})
async def sign_in(request: Request, token: Annotated[str, Query(max_length=4096)],
                  next: Annotated[str, Query(max_length=512)] = PAGE) -> Response:
    """Starts a session from a link printed by ``adfatigue up`` / ``adfatigue sign-in`` (each link works
    once, until its ``exp``; a restart of the BFF keeps used links used). 401: expired, used or forged link;
    503: the used-links file cannot be read or written. Production deployments sign in through the proxy instead."""
    if request.app.state.settings.sign_in != "link":
        raise Problem(400, "sign-in links are off here: sign in through your company's sign-in page",
                      kind="sign-in-links-off")
    try:
        user = request.app.state.sign_in_links.redeem(token)
    except SignInUnavailable as exc:
        log.error("sign-in links cannot be checked: %s", exc)
        raise Problem(503, str(exc), kind="sign-in-unavailable") from None
    except SignInError as exc:
        log.warning("sign-in link refused: %s", exc)  # never the link or its token (logs.py redacts them anyway)
        raise Problem(401, str(exc), kind="sign-in-link") from None
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
