"""`mailmoat waves`: the waves recognised lately (one new link destination from many unrelated senders)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from mailmoat.cli.common import (
    MAX_LIMIT,
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    FormatOpt,
    load_settings,
    open_store,
    output_console,
    when,
)

console = output_console()


def waves_cmd(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    hours: Annotated[float, typer.Option("--hours", help="How far back to look", min=0.01, max=24 * 3650)] = 48.0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT)] = 20,
) -> None:
    """Link destinations that LINK_DOMAIN_WAVE marked mail for, the latest first; recall their mail
    with `mailmoat recall plan --url-domain DESTINATION`."""
    from mailmoat.recall.waves import recent_waves

    store = open_store(load_settings(config, data_dir, db))
    try:
        with store.session() as s:
            items = recent_waves(s, time.time() - hours * 3600.0, limit)
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        console.print(f"no wave recognised in the last {hours:g} h")
        return
    t = Table()
    t.add_column("destination", no_wrap=True, overflow="fold")
    for name in ("messages", "senders", "held"):
        t.add_column(name, justify="right")
    t.add_column("first seen (UTC)")
    t.add_column("last seen (UTC)")
    for w in items:
        t.add_row(w["domain"], str(w["messages"]), str(w["senders"]), str(w["held"]), when(w["first_seen"]), when(w["last_seen"]))
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("waves")(waves_cmd)
