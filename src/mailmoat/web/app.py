"""The FastAPI application: JSON API under /api/v1, /metrics, health checks, and the console pages when present."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.store.db import Store
from mailmoat.web.auth import ROLES_KEY, LoginLimiter, Reader, roles_of

log = logging.getLogger("mailmoat.web")

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class WebContext:
    """What every request handler shares: settings, the store, the login limiter and background jobs."""

    settings: Settings
    store: Store
    limiter: LoginLimiter
    owns_store: bool = False
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    _recall: Any = None
    _delivery: Any = None

    def recall_engine(self) -> Any:
        from mailmoat.recall.engine import RecallEngine

        if self._recall is None:
            self._recall = RecallEngine(self.settings, self.store)
        return self._recall

    def delivery(self) -> Any:
        from mailmoat.deliver.service import DeliveryService

        if self._delivery is None:
            self._delivery = DeliveryService(self.settings, self.store)
        return self._delivery

    def spawn(self, key: str, coro: Any) -> asyncio.Task[Any]:
        """Run a coroutine in the background, kept referenced until it ends (errors are logged)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks[key] = task

        def done(t: asyncio.Task[Any]) -> None:
            if self.tasks.get(key) is t:
                del self.tasks[key]
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed: %s", key, t.exception())

        task.add_done_callback(done)
        return task

    async def close(self) -> None:
        for t in list(self.tasks.values()):
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self._recall is not None:
            with contextlib.suppress(Exception):
                await self._recall.close()
        if self._delivery is not None:
            with contextlib.suppress(Exception):
                self._delivery.close()
        if self.owns_store:
            self.store.close()


class SecurityHeaders(BaseHTTPMiddleware):
    """No sniffing, no framing, no remote content unless a page sets its own policy; API answers are never cached."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path.startswith(API_PREFIX):
            h.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
            h.setdefault("Cache-Control", "no-store")
        else:
            h.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            )
        return response


def _readiness(ctx: WebContext) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    ok = True
    try:
        with ctx.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        ok = False
        checks["database"] = f"error: {type(exc).__name__}"
    spool = ctx.settings.spool_dir
    try:
        spool.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".ready-", dir=spool)
        os.close(fd)
        os.unlink(name)
        checks["spool"] = "ok"
    except OSError as exc:
        ok = False
        checks["spool"] = f"error: {exc.strerror or exc}"
    return ok, checks


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    """A number from the request that the database cannot hold (SQLite: "Python int too large to
    convert to SQLite INTEGER") and that no parameter bound caught: the client's input is out of
    range, a 422 like any other bad parameter, not a server error (500)."""
    log.warning("%s %s: a number out of range: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "a number in the request is out of range"}, status_code=422)


def _mark_roles(router: APIRouter) -> None:
    """Write each route's admitted roles into OpenAPI, so clients and tests see the role table."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            roles = roles_of(route.dependant.dependencies)
            if roles is not None:
                extra = dict(route.openapi_extra or {})
                extra[ROLES_KEY] = list(roles)
                route.openapi_extra = extra


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The web application over an existing store (or one it opens and closes itself)."""
    from mailmoat.web import auth
    from mailmoat.web.api import ROUTERS

    owns = store is None
    if store is None:
        store = Store(settings.db_url, raw_dir=settings.raw_dir)
    w = settings.web
    ctx = WebContext(
        settings=settings, store=store, limiter=LoginLimiter(w.login_window, w.login_max_per_ip, w.login_max_per_user),
        owns_store=owns,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await ctx.close()

    app = FastAPI(title="mailmoat", version="1", openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.web = ctx
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(OverflowError, _out_of_range)
    for r in (auth.router, *ROUTERS):
        _mark_roles(r)
        app.include_router(r, prefix=API_PREFIX)

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False)
    def openapi_document(who: Reader) -> dict[str, Any]:
        """The OpenAPI document (for logged-in users and tokens, like every other API path)."""
        return app.openapi()

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        ok, checks = _readiness(ctx)
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint() -> Response:
        body, ctype = metrics.exposition(ctx.store, ctx.settings)
        return Response(body, media_type=ctype)

    _include_pages(app)
    return app


def _include_pages(app: FastAPI) -> None:
    """The console pages live in `mailmoat.web.pages` (with static files); the API works without them."""
    try:
        pages = importlib.import_module("mailmoat.web.pages")
    except ModuleNotFoundError as exc:
        if exc.name == "mailmoat.web.pages":
            return
        raise
    app.include_router(pages.router)
    if STATIC_DIR.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
