"""`mailmoat web`: the admin console and JSON API alone (without the SMTP listeners)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, fail, load_settings
from mailmoat.config import ConfigError, parse_hostport


def register(app: typer.Typer) -> None:
    @app.command("web")
    def web(
        listen: Annotated[str | None, typer.Option("--web", help="HOST:PORT to listen on (default: server.web)")] = None,
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Run the web console and API (uvicorn) until Ctrl-C."""
        from mailmoat.store.db import Store
        from mailmoat.web.server import serve_web

        settings = load_settings(config, data_dir, db)
        try:
            host, port = parse_hostport(listen or settings.server.web)
        except ConfigError as exc:
            raise fail(str(exc)) from exc

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            store = Store(settings.db_url, raw_dir=settings.raw_dir)
            try:
                await serve_web(settings, store, host, port, stop, started=lambda p: typer.echo(f"mailmoat web: http://{host}:{p}/"))
            finally:
                store.close()

        try:
            asyncio.run(main())
        except OSError as exc:
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
