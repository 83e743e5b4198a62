"""The signed-in user of a request (session cookie, or a trusted proxy's header) and the CSRF check."""

from __future__ import annotations

import hmac
import time
import uuid
from urllib.parse import urlsplit

from fastapi import Request

from services.bff.problems import Problem
from services.bff.sign_in import SignInUnavailable, new_csrf_token, proxy_user
from services.bff.users import User

CSRF_HEADER = "X-CSRF-Token"


def start_session(request: Request, user: User) -> None:
    request.session.clear()
    request.session.update({"user": user.as_session(), "csrf": new_csrf_token(), "sid": uuid.uuid4().hex})


def end_session(request: Request) -> None:
    """Sign-out: the session's cookie is cleared and its id refused until the cookie would have expired
    (a copy of the cookie does not sign in again)."""
    sid = request.session.get("sid")
    if isinstance(sid, str):
        try:
            request.app.state.sign_in_links.end_session(sid, time.time() + request.app.state.settings.session_max_age_s)
        except SignInUnavailable:  # logged by sign_in.py; the session stays: a sign-out that is not kept is none
            raise Problem(503, "sign-out could not be recorded (the server cannot write its sign-in records): "
                               "your session is still open; try again in a minute or tell the operator",
                          kind="sign-out-unavailable", headers={"Retry-After": "60"}) from None
    request.session.clear()


def session_ended(request: Request) -> bool:
    """Whether the request's session was signed out (or has no id). Fails closed: True when the sign-in
    records cannot be read."""
    sid = request.session.get("sid")
    if not isinstance(sid, str):
        return True
    try:
        return request.app.state.sign_in_links.session_ended(sid)
    except SignInUnavailable:
        return True


def _how_to_sign_in(settings) -> str:
    if settings.sign_in == "link":
        return ("open a sign-in link: the one `adfatigue up` printed, or a new one from `adfatigue sign-in` "
                "(each works once)")
    return "sign in through your company's sign-in page"


def signed_in(request: Request) -> User:
    """FastAPI dependency: the user, or Problem 401 saying how to sign in."""
    settings = request.app.state.settings
    if settings.sign_in == "proxy-header":
        name = request.headers.get(settings.proxy_user_header, "").strip()
        peer = request.client.host if request.client else ""
        if name and peer in settings.trusted_proxies:
            current = request.session.get("user")
            if not current or current.get("sub") != name:
                start_session(request, proxy_user(name, settings.user_accounts, settings.operator_users))
    hint = _how_to_sign_in(settings)
    data = request.session.get("user")
    if not data:
        raise Problem(401, f"not signed in: {hint}", kind="not-signed-in")
    sid = request.session.get("sid")
    if not isinstance(sid, str):
        request.session.clear()
        raise Problem(401, f"your session is from an older version: {hint}", kind="not-signed-in")
    try:
        ended = request.app.state.sign_in_links.session_ended(sid)
    except SignInUnavailable as exc:
        raise Problem(503, str(exc), kind="sign-in-unavailable", headers={"Retry-After": "60"}) from None
    if ended:
        request.session.clear()
        raise Problem(401, f"this session was signed out: {hint}", kind="not-signed-in")
    try:
        return User.from_session(data)
    except (KeyError, TypeError):
        request.session.clear()
        raise Problem(401, f"your session is damaged: {hint}", kind="not-signed-in") from None


def site_origin(request: Request) -> str:
    """This site's origin (scheme://host[:port]): ``BFF_PUBLIC_URL``'s when set (behind a TLS proxy the BFF
    itself sees http), else the request's own scheme and Host."""
    public = request.app.state.settings.public_url
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return f"{request.url.scheme}://{request.headers.get('host', '')}".lower()


def require_csrf(request: Request) -> None:
    """State-changing requests: a signed-in user (else 401, as for reads), ``X-CSRF-Token`` matching the
    session's token and Origin, if sent, exactly this site's (scheme included: http://site is not https://site)
    (else 403)."""
    signed_in(request)
    expected = request.session.get("csrf", "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Problem(403, f"missing or wrong {CSRF_HEADER} header: take csrf_token from GET /api/v1/session "
                           "(reload the page)", kind="csrf")
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/").lower() != site_origin(request):
        shown = origin if len(origin) <= 100 else origin[:100] + "…"
        raise Problem(403, f"request from another site ({shown}) refused: this site is {site_origin(request)}",
                      kind="csrf")
