"""Console and API authentication: Argon2id passwords, sessions with CSRF tokens, bearer tokens, roles, login limits."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailmoat.config import Settings
from mailmoat.store.audit import audit
from mailmoat.store.db import Store
from mailmoat.store.web_models import ApiTokenRow, UserRow, WebSessionRow

ROLES = ("admin", "analyst", "auditor")
# Who may do what; every route names one of these, and the security tests read them from OpenAPI.
READ = ("admin", "analyst", "auditor")
ACT = ("admin", "analyst")
AUDIT = ("admin", "auditor")
ADMIN = ("admin",)

SESSION_COOKIE = "mm_session"
CSRF_COOKIE = "mm_csrf"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_PREFIX = "mmt_"
MAX_TOKEN_DAYS = 3650  # ten years: beyond, a time is a typing slip (or inf) rather than a plan
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ROLES_KEY = "x-mailmoat-roles"

_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id (RFC 9106 low-memory profile)
_DUMMY_HASH = _hasher.hash("not a real password")


class AuthError(ValueError):
    """A user or token operation that cannot be done (unknown user, bad role, weak password)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# A user name is part of URL paths (/api/v1/users/{name}, the console's links) and of the audit log:
# with a '/', '?', '#' or '%' the account could not be changed, disabled or deleted any more (404),
# a control character would garble the log, and "." or ".." are rewritten by clients as paths.
# E-mail addresses and plain logins fit. Names made before this rule are left as they are.
USERNAME_RULE = "a user name is 1 to 320 characters: letters a-z, digits and . _ @ + -, starting with a letter or digit"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,319}")


def check_username(name: str) -> None:
    """A new user's name (already stripped and in lower case) follows USERNAME_RULE."""
    if not _USERNAME.fullmatch(name):
        raise AuthError(USERNAME_RULE)


def check_password_policy(password: str) -> None:
    if len(password) < 10:
        raise AuthError("a password needs at least 10 characters")


def random_password() -> str:
    return secrets.token_urlsafe(15)


# -- account operations (used by the API and by `mailmoat users`) ---------------------------


def get_user(s: Session, username: str) -> UserRow | None:
    return s.scalars(select(UserRow).where(UserRow.username == username.strip().lower())).first()


def create_user(s: Session, username: str, password: str, role: str) -> UserRow:
    name = username.strip().lower()
    check_username(name)
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r} (use {', '.join(ROLES)})")
    check_password_policy(password)
    if get_user(s, name) is not None:
        raise AuthError(f"user {name} already exists")
    row = UserRow(username=name, password_hash=hash_password(password), role=role, created_at=time.time())
    s.add(row)
    s.flush()
    return row


def set_password(s: Session, user: UserRow, password: str) -> None:
    check_password_policy(password)
    user.password_hash = hash_password(password)
    # A new password ends every console session of that user.
    s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user.id))


def create_token(s: Session, user: UserRow, name: str, expires_days: float = 0.0) -> tuple[ApiTokenRow, str]:
    """A new API token; the secret is returned once and only its hash is kept."""
    if not math.isfinite(expires_days) or not 0 <= expires_days <= MAX_TOKEN_DAYS:
        # 1e308 days stored an expiry no listing could show (null): a token that never expires by mistake.
        raise AuthError(f"a token expires in 0 (never) to {MAX_TOKEN_DAYS} days, not {expires_days!r}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    row = ApiTokenRow(
        user_id=user.id, name=name[:128], prefix=secret[: len(TOKEN_PREFIX) + 6], token_hash=token_digest(secret),
        created_at=now, expires_at=now + expires_days * 86400 if expires_days > 0 else 0.0,
    )
    s.add(row)
    s.flush()
    return row, secret


def user_dict(u: UserRow) -> dict[str, Any]:
    return {
        "id": u.id, "username": u.username, "role": u.role, "disabled": u.disabled,
        "created_at": u.created_at, "last_login": u.last_login,
    }


def token_dict(t: ApiTokenRow, username: str = "") -> dict[str, Any]:
    return {
        "id": t.id, "user_id": t.user_id, "username": username, "name": t.name, "prefix": t.prefix,
        "created_at": t.created_at, "expires_at": t.expires_at, "last_used": t.last_used, "revoked": t.revoked,
    }


# -- login rate limiting --------------------------------------------------------------------


class LoginLimiter:
    """Failed logins per client address and per user name in a sliding window (one web process)."""

    def __init__(self, window: float, per_ip: int, per_user: int) -> None:
        self.window = window
        self.per_ip = per_ip
        self.per_user = per_user
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] < now - self.window:
            q.popleft()
        return q

    def blocked(self, ip: str, user: str) -> float:
        """Seconds until another try is allowed (0 = allowed now)."""
        now = time.monotonic()
        with self._lock:
            waits = []
            for key, limit in ((f"ip:{ip}", self.per_ip), (f"user:{user}", self.per_user)):
                q = self._recent(key, now)
                if limit > 0 and len(q) >= limit:
                    waits.append(q[0] + self.window - now)
            return max(waits, default=0.0)

    def failed(self, ip: str, user: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"ip:{ip}", f"user:{user}"):
                self._recent(key, now).append(now)
            if len(self._fails) > 100_000:  # bound memory under a spray of random names
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._fails.pop(f"user:{user}", None)


# -- request authentication -----------------------------------------------------------------


@dataclass
class Principal:
    user_id: int
    username: str
    role: str
    via: str  # "session" or "token"
    source: str  # client address


def client_ip(request: Request, settings: Settings) -> str:
    peer = request.client.host if request.client else ""
    if peer and settings.web.trusted_proxies:
        try:
            addr = ipaddress.ip_address(peer)
            trusted = any(addr in ipaddress.ip_network(n, strict=False) for n in settings.web.trusted_proxies)
        except ValueError:
            trusted = False
        fwd = request.headers.get("x-forwarded-for", "")
        if trusted and fwd:
            return fwd.split(",")[-1].strip()[:64]
    return peer[:64]


def _store(request: Request) -> Store:
    store: Store = request.app.state.web.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.web.settings
    return settings


def _unauthorized(detail: str = "authentication required") -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="mailmoat"'})


def current_principal(request: Request) -> Principal:
    """The authenticated caller: a bearer token, or the console session cookie (with CSRF on writes)."""
    settings = _settings(request)
    source = client_ip(request, settings)
    now = time.time()
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("use 'Authorization: Bearer <token>'")
        digest = token_digest(value.strip())
        with _store(request).session() as s:
            tok = s.scalars(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest)).first()
            if tok is None or tok.revoked or (tok.expires_at and tok.expires_at < now):
                raise _unauthorized("invalid or expired API token")
            user = s.get(UserRow, tok.user_id)
            if user is None or user.disabled:
                raise _unauthorized("the token's user is disabled")
            if now - tok.last_used > 60:  # avoid a write on every request
                tok.last_used = now
            return Principal(user.id, user.username, user.role, "token", source)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie:
        raise _unauthorized()
    with _store(request).session() as s:
        sess = s.get(WebSessionRow, token_digest(cookie))
        if sess is None or sess.expires_at < now:
            raise _unauthorized("session expired; log in again")
        user = s.get(UserRow, sess.user_id)
        if user is None or user.disabled:
            raise _unauthorized("account disabled")
        csrf = sess.csrf
        principal = Principal(user.id, user.username, user.role, "session", source)
    if request.method not in SAFE_METHODS:
        # Double submit: the header must repeat the cookie, and both must be this session's token.
        sent = request.headers.get(CSRF_HEADER.lower(), "")
        cookie_csrf = request.cookies.get(CSRF_COOKIE, "")
        if not sent or not hmac.compare_digest(sent, cookie_csrf) or not hmac.compare_digest(sent, csrf):
            raise HTTPException(403, "missing or wrong CSRF token (send the mm_csrf cookie value as X-CSRF-Token)")
    return principal


class require:
    """A dependency that admits only the given roles (401 without credentials, 403 with the wrong role)."""

    def __init__(self, *roles: str) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {unknown}")
        self.roles = tuple(roles)

    def __call__(self, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in self.roles:
            raise HTTPException(403, f"this needs the role {' or '.join(self.roles)}")
        return principal


Reader = Annotated[Principal, Depends(require(*READ))]
Actor = Annotated[Principal, Depends(require(*ACT))]
Auditor = Annotated[Principal, Depends(require(*AUDIT))]
Admin = Annotated[Principal, Depends(require(*ADMIN))]


def roles_of(dependencies: Sequence[Any]) -> tuple[str, ...] | None:
    """The roles a route admits, found among its (nested) dependencies; None for a public route."""
    for dep in dependencies:
        if isinstance(dep.call, require):
            return dep.call.roles
        found = roles_of(dep.dependencies)
        if found is not None:
            return found
    return None


# -- the auth routes -------------------------------------------------------------------------

router = APIRouter(prefix="/auth", tags=["auth"])

_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                }
            },
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                }
            },
        },
    }
}


async def _credentials(request: Request) -> tuple[str, str]:
    body = await request.body()
    if len(body) > 16384:
        raise HTTPException(413, "login body too large")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        import json

        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise HTTPException(400, "body is not JSON") from exc
        if not isinstance(data, dict):
            raise HTTPException(400, "expected a JSON object")
        user, pw = data.get("username", ""), data.get("password", "")
    else:
        form = parse_qs(body.decode("utf-8", "replace"))
        user, pw = form.get("username", [""])[0], form.get("password", [""])[0]
    if not isinstance(user, str) or not isinstance(pw, str) or not user or not pw:
        raise HTTPException(422, "username and password are required")
    return user.strip().lower()[:320], pw[:1024]


def _from_another_site(request: Request) -> bool:
    """Whether a browser sent this request from another site's page. A login needs no CSRF token
    (there is no session yet), so a page elsewhere could post a form that logs the visitor in as
    the attacker's account (login CSRF); browsers say where a request comes from."""
    site = request.headers.get("sec-fetch-site", "")
    if site:
        return site not in ("same-origin", "none")  # "none": typed or bookmarked
    origin = request.headers.get("origin", "")
    if not origin:
        return False  # not a browser's cross-site post (curl, scripts)
    hosts = {request.headers.get("host", ""), *request.headers.get("x-forwarded-host", "").split(",")}
    return urlsplit(origin).netloc not in {h.strip() for h in hosts if h.strip()}


@router.post("/login", openapi_extra=_LOGIN_BODY)
async def login(request: Request, response: Response) -> dict[str, Any]:
    """Log in to the console: sets the session cookie and the CSRF cookie (JSON or form body)."""
    import asyncio

    if _from_another_site(request):
        raise HTTPException(403, "log in from the console's own page")
    ctx = request.app.state.web
    settings: Settings = ctx.settings
    limiter: LoginLimiter = ctx.limiter
    username, password = await _credentials(request)
    ip = client_ip(request, settings)
    wait = limiter.blocked(ip, username)
    if wait > 0:
        raise HTTPException(429, "too many failed logins; try again later", headers={"Retry-After": str(int(wait) + 1)})

    def check() -> tuple[UserRow | None, str, str]:
        with ctx.store.session() as s:
            user = get_user(s, username)
            ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
            if user is None or not ok or user.disabled:
                audit(s, username, "auth.login_failed", username, source=ip)
                return None, "", ""
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
            now = time.time()
            user.last_login = now
            s.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))
            s.add(
                WebSessionRow(
                    id=token_digest(token), user_id=user.id, csrf=csrf, created_at=now,
                    expires_at=now + settings.web.session_hours * 3600, source=ip,
                )
            )
            audit(s, user.username, "auth.login", user.username, source=ip)
            return user, token, csrf

    user, token, csrf = await asyncio.to_thread(check)
    if user is None:
        limiter.failed(ip, username)
        raise _unauthorized("wrong user name or password")
    limiter.succeeded(username)
    max_age = int(settings.web.session_hours * 3600)
    secure = settings.web.secure_cookies
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure, path="/")
    return {"username": user.username, "role": user.role, "csrf": csrf}


@router.post("/logout")
def logout(request: Request, response: Response, who: Reader) -> dict[str, str]:
    """End the console session (a bearer token stays valid)."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    with _store(request).session() as s:
        if cookie:
            s.execute(delete(WebSessionRow).where(WebSessionRow.id == token_digest(cookie)))
        audit(s, who.username, "auth.logout", who.username, source=who.source)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"status": "logged out"}


@router.get("/me")
def me(who: Reader) -> dict[str, Any]:
    """The logged-in user and role."""
    return {"username": who.username, "role": who.role, "via": who.via}
