"""`mailmoat worker`: run queued long-running work (recall, re-scan, automatic recall) from the PostgreSQL store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import Annotated

import typer

from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, fail, load_settings
from mailmoat.config import ConfigError, Settings, parse_hostport

log = logging.getLogger("mailmoat.worker")


async def _health(settings: Settings, store: object, stop: asyncio.Event) -> None:
    """/healthz (the process answers) and /readyz (the store answers) for a load balancer or orchestrator."""
    from sqlalchemy import text

    from mailmoat.store.db import Store

    assert isinstance(store, Store)
    host, port = parse_hostport(settings.tasks.health_listen)

    def ready() -> bool:
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            path = line.decode("latin-1").split(" ")[1] if line.count(b" ") >= 2 else ""
            if path == "/healthz":
                code, body = 200, "ok"
            elif path == "/readyz":
                ok = await asyncio.to_thread(ready)
                code, body = (200, "ready") if ok else (503, "store unreachable")
            else:
                code, body = 404, "not found"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
            writer.write(
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
        except (OSError, TimeoutError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()
    typer.echo(f"mailmoat worker: health on http://{bound[0]}:{bound[1]}/healthz and /readyz")
    async with server:
        await stop.wait()


async def run_worker(settings: Settings, concurrency: int, name: str) -> None:
    """Run tasks until SIGTERM/SIGINT; finish what is running first."""
    from mailmoat.store.db import Store
    from mailmoat.tasks import app as tasks_app
    from mailmoat.tasks.jobs import JobContext

    store = await asyncio.to_thread(Store, settings.db_url, raw_dir=settings.raw_dir)  # migrates to head
    app = tasks_app.build_app(settings)
    ctx = JobContext(settings, store)
    tasks_app.set_context(ctx)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with app.open_async():
            await tasks_app.ensure_schema(app, settings)
            t = settings.tasks
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[t.queue], concurrency=concurrency, name=name, install_signal_handlers=False,
                    update_heartbeat_interval=t.heartbeat, stalled_worker_timeout=t.stalled_after,
                    delete_jobs="successful",
                )
            )
            side = [asyncio.create_task(tasks_app.retry_stalled(app, settings, stop))]
            if t.health_listen:
                side.append(asyncio.create_task(_health(settings, store, stop)))
            typer.echo(f"mailmoat worker {name}: running tasks of queue {t.queue!r} (concurrency {concurrency})")
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([worker, waiter], return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            if not worker.done():
                worker.cancel()  # procrastinate finishes the running tasks before it returns
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await asyncio.gather(*side, return_exceptions=True)
            waiter.cancel()
    finally:
        tasks_app.set_context(None)
        await ctx.close()
        store.close()
        typer.echo(f"mailmoat worker {name}: stopped")


def worker(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="Tasks run at once (default tasks.concurrency)")] = None,
    health_listen: Annotated[
        str | None, typer.Option("--health-listen", help="HOST:PORT for /healthz and /readyz (port 0: any free port)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Worker name shown in the queue (default host:pid)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every task")] = False,
) -> None:
    """Run queued recall, re-scan and automatic-recall tasks (PostgreSQL store; any number of workers)."""
    from mailmoat.tasks.app import uses_queue

    settings = load_settings(config, data_dir, db)
    if health_listen is not None:
        settings.tasks.health_listen = health_listen
    if not uses_queue(settings):
        raise fail("mailmoat worker needs a PostgreSQL store (--db postgresql://...); with SQLite, tasks run in-process")
    try:
        if settings.tasks.health_listen:
            parse_hostport(settings.tasks.health_listen)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run_worker(settings, concurrency or settings.tasks.concurrency, name or f"{socket.gethostname()}:{os.getpid()}"))
    except OSError as exc:
        raise fail(f"cannot run the worker: {exc}") from exc


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


__all__ = ["register", "run_worker", "worker"]
