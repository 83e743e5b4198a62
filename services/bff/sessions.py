"""The signed-in user of a request (session cookie, or a trusted proxy's header) and the CSRF check."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request

from services.bff.problems import Problem
from services.bff.sign_in import new_csrf_token, proxy_user
from services.bff.users import User

CSRF_HEADER = "X-CSRF-Token"


def start_session(request: Request, user: User) -> None:
    request.session.clear()
    request.session.update({"user": user.as_session(), "csrf": new_csrf_token()})


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
    data = request.session.get("user")
    if not data:
        hint = ("open the sign-in link that `adfatigue up` printed (or run it again for a new one)"
                if settings.sign_in == "link" else "sign in through your company's sign-in page")
        raise Problem(401, f"not signed in: {hint}", kind="not-signed-in")
    try:
        return User.from_session(data)
    except (KeyError, TypeError):
        request.session.clear()
        raise Problem(401, "your session is damaged: sign in again", kind="not-signed-in") from None


def require_csrf(request: Request) -> None:
    """State-changing requests: ``X-CSRF-Token`` must match the session's token, and Origin (if sent) this site."""
    expected = request.session.get("csrf", "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Problem(403, f"missing or wrong {CSRF_HEADER} header: take csrf_token from GET /api/v1/session "
                           "(reload the page)", kind="csrf")
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Problem(403, f"request from another site ({origin}) refused", kind="csrf")
