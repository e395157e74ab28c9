"""`mailmoat trace`: list recorded messages and what happened to each delivered copy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from mailmoat.cli.common import (
    MAX_LIMIT,
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    check_format,
    load_settings,
    open_store,
    output_console,
    time_range,
)


def _deliveries_text(deliveries: list[dict[str, Any]]) -> str:
    def one(d: dict[str, Any]) -> str:
        text = f"{d['recipient']}: {d['status']}" + (f" ({d['reply']})" if d["status"] != "delivered" and d["reply"] else "")
        recall = d.get("recall")
        return text + (f", {recall['state']} by recall {recall['job_id']}" if recall else "")

    return "\n".join(one(d) for d in deliveries)


def register(app: typer.Typer) -> None:
    @app.command("trace")
    def trace_cmd(
        sender: Annotated[str | None, typer.Option("--sender", help="Envelope or header sender contains")] = None,
        rcpt: Annotated[str | None, typer.Option("--rcpt", help="A recipient contains")] = None,
        subject: Annotated[str | None, typer.Option("--subject", help="Subject contains")] = None,
        message_id: Annotated[
            str | None, typer.Option("--message-id", help="Message-ID, mailmoat id or X-Mailmoat-Id")
        ] = None,
        since: Annotated[str | None, typer.Option("--since", help="ISO date/time or 3d, 12h, 30m ago")] = None,
        until: Annotated[str | None, typer.Option("--until", help="ISO date/time or 3d, 12h, 30m ago")] = None,
        action: Annotated[
            str | None, typer.Option("--action", help="deliver, tag, quarantine, reject or tempfail")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="At most this many messages, newest first")] = 100,
        fmt: Annotated[str, typer.Option("--format", help="Output format: text or json")] = "text",
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """List recorded messages and their deliveries (per recipient: status, tracking id, reply)."""
        check_format(fmt)
        since_ts, until_ts = time_range(since, until)
        store = open_store(load_settings(config, data_dir, db))
        try:
            rows = store.trace(
                sender=sender, rcpt=rcpt, subject=subject, message_id=message_id,
                since=since_ts, until=until_ts, action=action, limit=limit,
            )
        finally:
            store.close()
        if fmt == "json":
            typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        console = output_console()
        if not rows:
            console.print("no matching messages")
            return
        table = Table(show_lines=True)
        for col in ("received (UTC)", "id", "from", "subject", "action", "score", "deliveries"):
            table.add_column(col, overflow="fold")
        for r in rows:
            received = datetime.fromisoformat(r["received_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if r["received_at"] else ""
            table.add_row(
                received, r["id"], r["mail_from"] or r["from"] or "<>", r["subject"], r["action"], f"{r['score']:.2f}",
                _deliveries_text(r["deliveries"]) or ", ".join(r["rcpt_tos"]),
            )
        console.print(table)
        console.print(f"{len(rows)} message(s)")
