"""Console pages: server-rendered shells (Jinja2) whose data comes from the JSON API through console.js."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from mailmoat.web.auth import ACT, ADMIN, AUDIT, Principal, current_principal
from mailmoat.web.i18n import LANG_COOKIE, LANGS, lang_of, strings, translate

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

router = APIRouter(include_in_schema=False)

# page name -> (template, nav key, roles that may open it; None = every logged-in role)
NAV: list[tuple[str, str, str, tuple[str, ...] | None]] = [
    ("dashboard", "/", "nav.dashboard", None),
    ("messages", "/messages", "nav.messages", None),
    ("quarantine", "/quarantine", "nav.quarantine", None),
    ("recall", "/recall", "nav.recall", None),
    ("reports", "/reports", "nav.reports", None),
    ("incidents", "/incidents", "nav.incidents", None),
    ("indicators", "/indicators", "nav.indicators", None),
    ("lists", "/lists", "nav.lists", None),
    ("rules", "/rules", "nav.rules", None),
    ("audit", "/audit", "nav.audit", AUDIT),
    ("users", "/users", "nav.users", ADMIN),
]


def _safe_next(target: str) -> str:
    """Only a path on this site (no scheme, no `//host`), so the login page is no open redirect.
    Browsers drop tabs and line breaks from a URL: "/<TAB>/evil.example" is "//evil.example"."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(c < " " or c == "\x7f" for c in target):
        return "/"
    return target


def _json_for_script(data: Any) -> Markup:
    """JSON that can sit inside <script type="application/json"> without ending it early."""
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # every markup-significant character is escaped above


def _principal(request: Request) -> Principal | None:
    try:
        return current_principal(request)
    except HTTPException:
        return None


def _login_redirect(request: Request) -> RedirectResponse:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(path, safe='')}", status_code=303)


def _render(request: Request, template: str, page: str, who: Principal | None, status: int = 200, **extra: Any) -> Response:
    lang = lang_of(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    nav = [
        {"page": name, "href": href, "label": translate(lang, key)}
        for name, href, key, roles in NAV
        if who is not None and (roles is None or who.role in roles)
    ]
    ctx: dict[str, Any] = {
        "lang": lang,
        "other_lang": "zh" if lang == "en" else "en",
        "t": lambda key: translate(lang, key),
        "strings_json": _json_for_script(strings(lang)),
        "page": page,
        "nav": nav,
        "user": who,
        "can_act": who is not None and who.role in ACT,
        "is_admin": who is not None and who.role in ADMIN,
        "here": quote(here, safe=""),
        **extra,
    }
    ctx["page_json"] = _json_for_script(
        {
            "page": page, "role": who.role if who else "", "user": who.username if who else "",
            "canAct": ctx["can_act"], "isAdmin": ctx["is_admin"], "lang": lang,
            **{k: v for k, v in extra.items() if isinstance(v, str)},
        }
    )
    resp = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _page(request: Request, name: str, template: str | None = None, **extra: Any) -> Response:
    who = _principal(request)
    if who is None:
        return _login_redirect(request)
    roles = next((r for n, _, _, r in NAV if n == name), None)
    if roles is not None and who.role not in roles:
        return _render(request, "forbidden.html", name, who, status=403)
    return _render(request, template or f"{name}.html", name, who, **extra)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    if _principal(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "login.html", "login", None, next_url=_safe_next(next))


@router.get("/lang/{code}")
def set_language(code: str, next: str = "/") -> Response:
    """Switch the UI language (kept for a year in a cookie) and go back to the page."""
    resp = RedirectResponse(_safe_next(next), status_code=303)
    if code in LANGS:
        resp.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
    return resp


def _nav_page(name: str) -> Callable[[Request], Response]:
    def show(request: Request) -> Response:
        return _page(request, name)

    show.__name__ = f"{name}_page"
    return show


# Each NAV page is its template rendered for the principal; console.js fills it from the API.
for _name, _href, _key, _roles in NAV:
    router.add_api_route(_href, _nav_page(_name), methods=["GET"], response_class=HTMLResponse)


@router.get("/messages/{mail_id}", response_class=HTMLResponse)
def message_page(request: Request, mail_id: str) -> Response:
    return _page(request, "messages", "message.html", mail_id=mail_id)


@router.get("/recall/{job_id}", response_class=HTMLResponse)
def recall_job_page(request: Request, job_id: str) -> Response:
    return _page(request, "recall", "recall_job.html", job_id=job_id)


# -- release links from quarantine digests (no login: the token is the permission) ----------------

_LINK_STATUS = {"ok": 200, "released": 200, "requested": 200, "unknown": 404, "expired": 410, "used": 409, "done": 409, "withheld": 409}


def _digest_page(request: Request, token: str, state: str, link: Any) -> Response:
    from datetime import datetime

    from mailmoat.web.api.common import web

    received = datetime.fromtimestamp(link.received_at).strftime("%Y-%m-%d %H:%M") if link.received_at else ""
    offer_safe = web(request).settings.digest.safe_senders and link.way == "release" and bool(link.sender_addr)
    resp = _render(request, "digest.html", "digest", None, status=_LINK_STATUS.get(state, 409),
                   state=state, link=link, token=token, received=received, offer_safe=offer_safe)
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@router.get("/digest/{token}", response_class=HTMLResponse)
async def digest_link_page(request: Request, token: str) -> Response:
    """What a digest's release link stands for, and a button to release it; opening it changes
    nothing, because mail filters and link previews open links too."""
    import asyncio

    from mailmoat.digest import look_up
    from mailmoat.web.api.common import web

    link = await asyncio.to_thread(look_up, web(request).store, web(request).settings, token)
    return _digest_page(request, token, link.state, link)


@router.post("/digest/{token}", response_class=HTMLResponse)
async def digest_link_release(request: Request, token: str) -> Response:
    """Release the recipient's own copy, or ask the administrators to, once."""
    from mailmoat.digest import redeem
    from mailmoat.web.api.common import web
    from mailmoat.web.auth import client_ip

    ctx = web(request)
    form = await request.form()
    link, status = await redeem(ctx.settings, ctx.store, ctx.delivery(), token, client_ip(request, ctx.settings),
                                allow_sender=form.get("allow") == "1")
    done = "requested" if status == "requested" else "released" if status else link.state
    return _digest_page(request, token, done, link)
