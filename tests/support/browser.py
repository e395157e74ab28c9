"""Browser-test fixtures: the web app under uvicorn in a thread, Debian's Chromium through Playwright, console users."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from mailmoat.config import Settings
from mailmoat.store.db import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
# A common laptop screen.
VIEWPORT = {"width": 1440, "height": 900}


def chromium_missing() -> str:
    """Why browser tests cannot run here ('' when they can)."""
    return "" if CHROMIUM.exists() else f"{CHROMIUM} is missing (apt-get install chromium)"


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: it runs in a thread and is stopped by the test."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConsoleServer:
    """`create_app(settings)` served by uvicorn on a free loopback port, in its own thread and event loop."""

    def __init__(self, settings: Settings) -> None:
        from mailmoat.web.app import create_app
        from mailmoat.web.server import bind

        self.settings = settings
        self.sock = bind("127.0.0.1", 0)
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="on")
        self.server = _QuietServer(config)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="console-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # reported by start()/stop()
            self.error = exc

    def start(self, timeout: float = 30.0) -> ConsoleServer:
        from tests.support.gateway import wait_for

        self._thread.start()
        wait_for(lambda: self.server.started or self.error is not None or not self._thread.is_alive(), timeout, what="the web server")
        if not self.server.started:
            raise AssertionError(f"web server did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self.sock.close()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_user(settings: Settings, username: str, password: str, role: str) -> None:
    """A console account, created directly in the store (as `mailmoat users add` does)."""
    from mailmoat.web.auth import create_user

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        with store.session() as s:
            create_user(s, username, password, role)
    finally:
        store.close()


@contextlib.contextmanager
def chromium(user_data_dir: Path) -> Iterator[Any]:
    """A headless Chromium context (Debian's binary, never a downloaded one) with a fresh profile."""
    from playwright.sync_api import sync_playwright

    user_data_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT, locale="en-US", timezone_id="UTC",
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()


def wait_ready(page: Any) -> None:
    """Wait until console.js has rendered the page from the API (body[data-ready] is set)."""
    page.wait_for_selector("body[data-ready]", state="attached")
    state = page.get_attribute("body", "data-ready")
    if state != "1":
        flash = page.text_content("#flash") or ""
        raise AssertionError(f"page {page.url} failed to render: {flash}")


def login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(f"{base}/")
    wait_ready(page)


def logout(page: Any, base: str) -> None:
    page.click("#logout")
    page.wait_for_url(f"{base}/login")
