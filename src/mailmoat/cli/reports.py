"""`mailmoat reports`: the messages colleagues reported to the report mailbox, for the security team to condemn or dismiss."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from mailmoat.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    FormatOpt,
    actor,
    check_format,
    fail,
    load_settings,
    open_store,
    output_console,
    when,
)

reports_app = typer.Typer(help="Mail colleagues reported: list, dismiss (condemn one with `recall condemn ID`).", no_args_is_help=True)


@reports_app.command("list")
def list_cmd(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    everything: Annotated[bool, typer.Option("--all", help="Also those condemned, recalled or dismissed")] = False,
    days: Annotated[float, typer.Option("--days", min=0, help="Reported in the last N days (0 = any time)")] = 30.0,
) -> None:
    """Reported messages, most recently reported first, with who reported them and what became of them."""
    from mailmoat.reports.triage import reported

    check_format(fmt)
    store = open_store(load_settings(config, data_dir, db))
    try:
        with store.session() as s:
            items = reported(s, everything=everything, since=time.time() - days * 86400.0 if days else 0.0)
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps({"items": items}, ensure_ascii=False, indent=2))
        return
    console = output_console()
    if not items:
        console.print("no reported message waits for a decision" if not everything else "no reports")
        return
    table = Table("last reported (UTC)", "reporters", "id", "from", "subject", "verdict", "state")
    for i in items:
        m = i["message"] or {}
        table.add_row(
            when(i["last_reported"]), f"{len(i['reporters'])}: {', '.join(i['reporters'])}",
            i["mail_id"] or f"(not found; report {i['key']})", m.get("from_addr") or m.get("mail_from") or i["sender"],
            m.get("subject") or i["subject"], f"{m['action']} {m['score']:.1f}" if m else "", i["state"],
        )
    console.print(table)


@reports_app.command("dismiss")
def dismiss_cmd(
    key: Annotated[str, typer.Argument(help="The reported message's id, or a report's id when its message was not found")],
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log)")] = "",
) -> None:
    """Dismiss the reports of a message: nothing is recalled, and it leaves the list."""
    from mailmoat.reports.triage import ReportError, dismiss
    from mailmoat.store.audit import audit

    store = open_store(load_settings(config, data_dir, db))
    try:
        with store.session() as s:
            n = dismiss(s, key, actor())
            audit(s, actor(), "report.dismiss", key, source="cli", detail={"reports": n}, note=reason)
    except ReportError as exc:
        raise fail(str(exc), 1) from exc
    finally:
        store.close()
    typer.echo(f"dismissed {n} report(s) of {key}")


def register(app: typer.Typer) -> None:
    app.add_typer(reports_app, name="reports")
