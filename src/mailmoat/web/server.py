"""Running the web application with uvicorn inside an existing event loop (next to the SMTP listeners)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator

import uvicorn

from mailmoat.config import Settings
from mailmoat.store.db import Store
from mailmoat.web.app import create_app

log = logging.getLogger("mailmoat.web")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the gateway owns SIGTERM/SIGINT and says stop through an event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one); IPv6 when the host is an IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve_web(
    settings: Settings,
    store: Store | None,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    started: Callable[[int], None] | None = None,
) -> None:
    """Serve the console and API on host:port until `stop` is set; `started(port)` is called once listening."""
    app = create_app(settings, store)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", proxy_headers=False)
    server = _EmbeddedServer(config)

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.ensure_future(watch())
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            log.info("web console and API on http://%s:%d/", host, bound)
            if started is not None:
                started(bound)
        await serving
    finally:
        watcher.cancel()
        if not serving.done():
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
        sock.close()
