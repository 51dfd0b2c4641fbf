"""Sign-in pages: log in (a session cookie: HttpOnly, SameSite=Lax, Secure when configured),
log out, and "my account". Forms carry a CSRF token: before sign-in a double-submit cookie,
afterwards the session's own token."""

from __future__ import annotations

import html
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from jetbridge.api.policy import Public, PublicForm, authenticate
from jetbridge.errors import Forbidden, Unauthenticated
from jetbridge.ops.identity import store, tokens
from jetbridge.ops.identity.authenticator import SESSION_COOKIE, Authenticator

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "jb_login_csrf"
STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f6fb; color: #13213a; }
header { background: #0b2545; color: white; padding: 1rem 2rem; display: flex; gap: 2rem;
  align-items: baseline; }
header a { color: #9cc4ff; } main { padding: 1.5rem 2rem; max-width: 640px; }
label { display: block; margin: .6rem 0; } input { padding: .4rem; min-width: 16rem; }
.error { color: #a4161a; } dt { font-weight: 600; } dd { margin: 0 0 .6rem 0; }
</style>"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>jetbridge — {title}'
        f'</title>{STYLE}</head><body><header><h1>jetbridge</h1><a href="/book">Book</a>'
        '<a href="/trips">My trips</a><a href="/account">My account</a></header>'
        f"<main>{body}</main></body></html>"
    )


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another origin."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/account"
    return target


def _login_form(csrf: str, next_path: str, error: str = "") -> str:
    message = f'<p class="error" id="error">{html.escape(error)}</p>' if error else ""
    return _page(
        "sign in",
        f"<h2>Sign in</h2>{message}"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="csrf_token" value="{html.escape(csrf)}">'
        f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
        '<label>User name <input id="username" name="username" autocomplete="username" '
        'required maxlength="128"></label>'
        '<label>Password <input id="password" name="password" type="password" '
        'autocomplete="current-password" required maxlength="1024"></label>'
        '<button id="sign-in" type="submit">Sign in</button></form>'
        "<p>No account? Book as a guest, and find your booking on "
        '<a href="/trips">My trips</a> with its record locator and family name.</p>',
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, _: Public, next: str | None = None) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = HTMLResponse(_login_form(csrf, _safe_next(next)))
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    _: PublicForm,
    username: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=128)],
    next: Annotated[str, Form(max_length=512)] = "/account",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not expected or not secrets.compare_digest(expected.encode(), csrf_token.encode()):
        raise Forbidden("the sign-in form has expired; reload the page and try again")
    authenticator: Authenticator = request.app.state.platform.auth
    with authenticator.engine.begin() as conn:
        user = store.check_password(conn, username=username, password=password)
        session = None
        if user is not None:
            session, _csrf = tokens.open_session(
                conn, authenticator.tokens, user_id=user["user_id"]
            )
    if session is None:
        fresh = secrets.token_urlsafe(24)
        page = _login_form(fresh, _safe_next(next), "Unknown user name or wrong password.")
        response: Response = HTMLResponse(page, status_code=401)
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, fresh, max_age=3600)
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(
        request, response, SESSION_COOKIE, session, max_age=authenticator.tokens.session_seconds
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(
    request: Request, _: PublicForm, csrf_token: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    """End the page session (the form sends the session's CSRF token)."""
    try:
        result = authenticate(request)
    except Unauthenticated:
        result = None
    if result is not None and result.session is not None:
        if not secrets.compare_digest((result.csrf or "").encode(), csrf_token.encode()):
            raise Forbidden("the sign-out form must carry the session's CSRF token")
        authenticator: Authenticator = request.app.state.platform.auth
        with authenticator.engine.begin() as conn:
            tokens.close_session(conn, token=result.session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, _: Public) -> Response:
    """The signed-in user's account; anyone else is sent to sign in."""
    try:
        result = authenticate(request)
    except Unauthenticated:
        result = None
    if result is None or not result.principal.authenticated:
        return RedirectResponse("/login?next=/account", status_code=303)
    principal = result.principal
    roles = ", ".join(sorted(principal.roles))
    body = (
        "<h2>My account</h2><dl>"
        f'<dt>User name</dt><dd id="account-name">{html.escape(principal.display)}</dd>'
        f'<dt>Roles</dt><dd id="account-roles">{html.escape(roles)}</dd>'
        f"<dt>Tenant</dt><dd>{html.escape(principal.tenant or '—')}</dd></dl>"
        '<p><a href="/trips">My trips</a></p>'
    )
    if result.csrf is not None:
        body += (
            '<form method="post" action="/logout">'
            f'<input type="hidden" name="csrf_token" value="{html.escape(result.csrf)}">'
            '<button id="sign-out" type="submit">Sign out</button></form>'
        )
    return HTMLResponse(_page("my account", body))


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    secure = bool(request.app.state.platform.settings.cookie_secure)
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )
