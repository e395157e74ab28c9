"""`mailmoat digest send|preview`: the quarantine digests, sent now by hand or shown before they go out."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Annotated

import typer

from mailmoat.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    FormatOpt,
    check_format,
    fail,
    load_settings,
    open_store,
    output_console,
)

digest_app = typer.Typer(help="Quarantine digests to recipients: send the due ones now, or preview one.", no_args_is_help=True)

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")  # local-part@domain, no spaces (localhost has no dot)
RcptOpt = Annotated[list[str] | None, typer.Option("--rcpt", help="Only this recipient (repeatable)")]


@digest_app.command("send")
def send_cmd(
    rcpt: RcptOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say who would get a digest, and of how many messages")] = False,
    now: Annotated[bool, typer.Option("--now", help="As if now were a scheduled hour: list what is held up to now")] = False,
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
) -> None:
    """Send the digests due at the latest scheduled hour (digest.hours), as the gateway does, or
    --now; a recipient gets one only when something new was held for them since their last one."""
    from mailmoat.digest import due, send_due

    check_format(fmt)
    settings = load_settings(config, data_dir, db)
    store = open_store(settings)
    try:
        if dry_run:
            results = [{"recipient": d.recipient, "items": len(d.items), "total": d.total, "status": "due", "mail_id": ""}
                       for d in due(store, settings, time.time(), rcpt or (), now)]
        else:
            results = asyncio.run(send_due(settings, store, only=rcpt or (), at_now=now))
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps({"digests": results}, ensure_ascii=False, indent=2))
    elif not results:
        typer.echo("no digest due: nothing new held for anyone between their last digest and the latest scheduled hour")
    else:
        out = output_console()
        for r in results:
            out.print(f"{r['status']} {r['recipient']}: {r['items']} of {r['total']} held message(s) {r['mail_id']}".rstrip())
    if any(r["status"] == "failed" for r in results):
        raise typer.Exit(1)


@digest_app.command("preview")
def preview_cmd(
    recipient: Annotated[str, typer.Argument(help="A recipient address in server.domains")],
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
) -> None:
    """What RECIPIENT's digest would list now (each release link reads <token>; nothing is sent or recorded)."""
    from mailmoat.digest import compose, preview
    from mailmoat.digest.listing import gets_digests

    settings = load_settings(config, data_dir, db)
    # A typo ("alice@", "alice corp.example") is not one of the addresses that get no digest.
    if not _ADDRESS.fullmatch(recipient.strip()):
        raise fail(f"{recipient!r} is not an e-mail address (local-part@domain)")
    if not gets_digests(settings, recipient):
        typer.echo(f"{recipient} gets no digest: not in server.domains, outside digest.domains or in digest.exclude")
        return
    store = open_store(settings)
    try:
        d = preview(store, settings, recipient)
    finally:
        store.close()
    if d is None:
        typer.echo(f"nothing held for {recipient} that a digest lists (digest.categories: {', '.join(settings.digest.categories)})")
        return
    subject, text, _ = compose(settings, d)
    out = output_console()
    out.print(f"Subject: {subject}\n")
    out.print(text)


def register(app: typer.Typer) -> None:
    app.add_typer(digest_app, name="digest")
