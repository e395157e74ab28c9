"""`mailmoat serve`: the SMTP listeners, the processing workers and the web console in one command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, fail, load_settings, policy_settings
from mailmoat.config import ConfigError, Settings, parse_hostport, validate, warnings
from mailmoat.ingest.smtp import INBOUND, INTERNAL, Listening, start_listener, tls_context
from mailmoat.ingest.spool import Spool, SpoolError, SpoolRef
from mailmoat.tasks.embedded import EmbeddedWorker
from mailmoat.worker import Pool, make_pool

log = logging.getLogger("mailmoat.serve")


@dataclass
class Gateway:
    """Spool + workers + listeners, started and stopped in the right order."""

    settings: Settings
    spool: Spool | None = None
    pool: Pool | None = None
    listeners: list[Listening] = field(default_factory=list)

    async def start(self) -> None:
        s = self.settings
        s.data_path.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(s.spool_dir)
        await asyncio.to_thread(self.spool.lock)
        recovered = await asyncio.to_thread(self.spool.recover)
        if recovered:
            log.warning("recovered %d spooled messages left by an earlier run", recovered)
        self.pool = make_pool(s, self.spool)
        await self.pool.start()
        try:
            self.listeners.append(await start_listener(s, self.spool, self.pool, INBOUND, s.server.listen))
            if s.server.internal_listen:
                self.listeners.append(await start_listener(s, self.spool, self.pool, INTERNAL, s.server.internal_listen))
        except BaseException:
            await self.stop()
            raise
        # Everything already waiting (recovered or deferred and due) goes to the workers now.
        for name in await asyncio.to_thread(self.spool.pending):
            self.pool.submit(_ref(self.spool, name))

    def address(self, name: str = INBOUND) -> tuple[str, int]:
        for lst in self.listeners:
            if lst.name == name:
                return lst.host, lst.port
        raise KeyError(name)

    async def stop(self) -> None:
        """Stop accepting, let workers finish what they hold, release the spool."""
        for lst in self.listeners:
            lst.server.close()
        for lst in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lst.server.wait_closed(), 5.0)
        self.listeners.clear()
        if self.pool is not None:
            await self.pool.stop()
            self.pool = None
        if self.spool is not None:
            self.spool.unlock()


class GatewayError(RuntimeError):
    """The gateway cannot run (e.g. its workers cannot load the configured rules or policy)."""


def _ref(spool: Spool, name: str) -> SpoolRef:
    return SpoolRef(name, spool.new / name)


def check(settings: Settings) -> None:
    """Fail early, with a clear message, on settings the gateway cannot run with."""
    # Again after loading: the command-line options (--listen, --domain, --relay-to, --workers,
    # --web) replaced values the file had.
    validate(settings)
    tls_context(settings)
    if settings.arc_seal.enabled:
        from mailmoat.deliver.arc_seal import load_key

        load_key(settings.arc_seal.key_file)


async def run(settings: Settings, announce: bool = True) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    gw = Gateway(settings)
    await gw.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if announce:
        for lst in gw.listeners:
            kind = "inbound SMTP" if lst.name == INBOUND else "internal relay SMTP"
            typer.echo(f"mailmoat: {kind} listening on {lst.host}:{lst.port}", err=False)
        where = settings.delivery.relay_to or f"Maildir store {settings.mail_dir.resolve()}"
        workers = settings.server.workers
        typer.echo(
            f"mailmoat: delivering to {where}; data in {settings.data_path.resolve()}; "
            f"{workers or 'in-process'} worker{'s' if workers != 1 else ''}"
        )
    assert gw.pool is not None
    failed = gw.pool.failed
    tasks_worker, supervisor = _start_task_worker(settings, stop, announce)
    web_task: asyncio.Task[None] | None = None
    if settings.server.web and settings.server.web != "off":
        from mailmoat.store.db import Store
        from mailmoat.web.server import serve_web

        host, port = parse_hostport(settings.server.web)
        web_store = Store(settings.db_url, raw_dir=settings.raw_dir)
        web_up = asyncio.Event()

        def on_web(bound: int) -> None:
            if announce:
                typer.echo(f"mailmoat: console and API on http://{host}:{bound}/")
            web_up.set()

        web_task = asyncio.create_task(serve_web(settings, web_store, host, port, stop, started=on_web))
        await asyncio.wait([web_task, asyncio.ensure_future(web_up.wait())], return_when=asyncio.FIRST_COMPLETED)
        if web_task.done():
            await _stop_task_worker(tasks_worker, supervisor, stop)
            await gw.stop()
            web_task.result()  # raises the reason it could not start (e.g. the port is taken)
    try:
        await asyncio.wait(
            [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(failed.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        fatal = gw.pool.fatal if gw.pool is not None else ""
        typer.echo("mailmoat: stopping")
        stop.set()
        if web_task is not None:
            with contextlib.suppress(Exception):
                await web_task
        await _stop_task_worker(tasks_worker, supervisor, stop)
        await gw.stop()
        typer.echo("mailmoat: stopped")
    if fatal:
        raise GatewayError(fatal)


def _start_task_worker(
    settings: Settings, stop: asyncio.Event, announce: bool
) -> tuple[EmbeddedWorker | None, asyncio.Task[None] | None]:
    """On PostgreSQL (and unless `tasks.serve_worker` is off), the supervised task worker process."""
    from mailmoat.tasks.app import uses_queue

    if not (settings.tasks.serve_worker and uses_queue(settings)):
        return None, None
    worker = EmbeddedWorker(settings)
    worker.start()
    if announce:
        typer.echo(f"mailmoat: task worker started (pid {worker.pid}, queue {settings.tasks.queue!r})")
    return worker, asyncio.create_task(worker.supervise(stop))


async def _stop_task_worker(
    worker: EmbeddedWorker | None, supervisor: asyncio.Task[None] | None, stop: asyncio.Event
) -> None:
    stop.set()
    if supervisor is not None:
        with contextlib.suppress(Exception):
            await supervisor
    if worker is not None:
        await asyncio.to_thread(worker.stop)


def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    listen: Annotated[str | None, typer.Option("--listen", help="Inbound MX listener HOST:PORT (port 0: any free port)")] = None,
    internal_listen: Annotated[
        str | None, typer.Option("--internal-listen", help="Relay listener for the mail system's internal/outbound mail")
    ] = None,
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="Protected domain (repeatable); replaces server.domains")
    ] = None,
    relay_to: Annotated[
        str | None, typer.Option("--relay-to", help="Deliver to smtp://HOST:PORT or lmtp://HOST:PORT (default: local Maildir)")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Processing worker processes (0: in the listener process)")] = None,
    web: Annotated[
        str | None, typer.Option("--web", help="Console and API HOST:PORT (default 127.0.0.1:8025; 'off' to disable)")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every message")] = False,
) -> None:
    """Run the gateway: SMTP listeners, processing workers, and the console and API."""
    settings = load_settings(config, data_dir, db)
    if listen is not None:
        settings.server.listen = listen
    if internal_listen is not None:
        settings.server.internal_listen = internal_listen
    if domain:
        settings.server.domains = list(domain)
    if relay_to is not None:
        settings.delivery.relay_to = relay_to
    if workers is not None:
        settings.server.workers = workers
    if web is not None:
        settings.server.web = web
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        check(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    policy_settings(settings, config)
    # Once here, not from each worker: a worker (re)start would repeat it in the log.
    for warning in warnings(settings):
        log.warning("%s", warning)
    _upgrade_model(settings)
    from mailmoat.worker import tune_gc

    tune_gc()  # the listener (and an in-process pool) handle a stream of messages too
    try:
        asyncio.run(run(settings))
    except (SpoolError, GatewayError) as exc:
        raise fail(str(exc)) from exc
    except SQLAlchemyError as exc:  # the database does not answer (down, wrong address, password)
        raise fail(f"cannot open the database {_db_where(settings)}: {str(exc).splitlines()[0]}") from exc
    except (OSError, ValueError) as exc:  # ports in use, bad policy/rules settings (ValueError subclasses)
        raise fail(f"cannot start: {exc}") from exc


def _db_where(settings: Settings) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(settings.db_url).render_as_string(hide_password=True)


def _upgrade_model(settings: Settings) -> None:
    """Convert an older JSON classifier model once, before the workers load it."""
    from mailmoat.classify import ModelError, upgrade_model

    try:
        written = upgrade_model(settings)
    except (ModelError, OSError) as exc:
        typer.echo(f"classifier model not converted: {exc}", err=True)
        return
    if written is not None:
        typer.echo(f"classifier model converted to the compact format: {written}", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


__all__ = ["Gateway", "GatewayError", "check", "register", "run", "serve"]
