"""`mailmoat audit`: who released, deleted, recalled, restored or changed what, and when (read-only)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mailmoat.cli.common import (
    MAX_LIMIT,
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    FormatOpt,
    check_format,
    load_settings,
    open_store,
    output_console,
    time_range,
    when,
)


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        actor: Annotated[str, typer.Option("--actor", help="Exactly this actor (a console user, cli:<login>, system)")] = "",
        action: Annotated[str, typer.Option("--action", help="Exactly this action, or a prefix ending in '.' (recall.)")] = "",
        target: Annotated[str, typer.Option("--target", help="A message, job, incident or rule id")] = "",
        since: Annotated[str, typer.Option("--since", help="3d, 12h, or an ISO date")] = "",
        until: Annotated[str, typer.Option("--until", help="3d, 12h, or an ISO date")] = "",
        limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="At most this many rows, newest first")] = 100,
        config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    ) -> None:
        """The audit log, newest first: every state change made from the console, the API, the CLI or by the gateway itself."""
        from mailmoat.store.audit import read_audit

        check_format(fmt)
        since_ts, until_ts = time_range(since, until)
        store = open_store(load_settings(config, data_dir, db))
        try:
            with store.session() as s:
                total, items = read_audit(
                    s, actor=actor, action=action, target=target, since=since_ts, until=until_ts, limit=limit
                )
        finally:
            store.close()
        if fmt == "json":
            typer.echo(json.dumps({"total": total, "items": items}, ensure_ascii=False, indent=2, default=str))
            return
        console = output_console()
        if not items:
            console.print("no matching audit rows")
            return
        table = Table("at (UTC)", "actor", "from", "action", "target", "note")
        for r in items:
            table.add_row(when(r["at"]), r["actor"], r["source"], r["action"], r["target"], r["note"])
        console.print(table)
        console.print(f"{len(items)} of {total}")
