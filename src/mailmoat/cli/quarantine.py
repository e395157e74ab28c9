"""`mailmoat quarantine list|show|release|delete|raw`: the held messages, from the command line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from mailmoat.cli.common import (
    MAX_LIMIT,
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
from mailmoat.store.queries import MAX_DB_INT

quarantine_app = typer.Typer(help="Held messages: list, show, release, delete, raw; recipients' release requests.",
                             no_args_is_help=True)

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log)")]


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "received_at": row.received_at, "direction": row.direction, "mail_from": row.mail_from,
        "from": row.from_addr, "rcpt_tos": list(row.rcpt_tos or []), "subject": row.subject,
        "score": row.score, "status": row.status, "reasons": list(row.reasons or []),
    }


def _audit(store: Any, action: str, mail_id: str, detail: dict[str, Any] | None = None, note: str = "") -> None:
    from mailmoat.store.audit import audit

    with store.session() as s:
        audit(s, actor(), action, mail_id, source="cli", detail=detail or {}, note=note)


@quarantine_app.command("list")
def list_cmd(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    sender: Annotated[str, typer.Option("--sender", help="Envelope or From address, or a domain")] = "",
    rcpt: Annotated[str, typer.Option("--rcpt", help="A recipient's address")] = "",
    subject: Annotated[str, typer.Option("--subject", help="Subject contains")] = "",
    since: Annotated[str, typer.Option("--since", help="3d, 12h, or an ISO date")] = "",
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="At most this many, newest first")] = 50,
) -> None:
    """Messages held in quarantine, newest first."""
    from mailmoat.recall.selection import SelectionError, Selector
    from mailmoat.store.quarantine import held

    check_format(fmt)
    store = open_store(load_settings(config, data_dir, db))
    try:
        with store.session() as s:
            total, rows = held(s, Selector(sender=sender, recipient=rcpt, subject=subject, since=since), limit=limit)
            items = [_summary(r) for r in rows]
    except SelectionError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps({"total": total, "items": items}, ensure_ascii=False, indent=2))
        return
    console = output_console()
    if not items:
        console.print("nothing held")
        return
    table = Table("received (UTC)", "id", "from", "to", "subject", "score", "why")
    for i in items:
        table.add_row(
            when(i["received_at"]), i["id"], i["mail_from"] or i["from"] or "<>", ", ".join(i["rcpt_tos"]),
            i["subject"], f"{i['score']:.1f}", "; ".join(i["reasons"])[:120],
        )
    console.print(table)
    console.print(f"{len(items)} of {total} held")


@quarantine_app.command("show")
def show_cmd(
    mail_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
) -> None:
    """One message: envelope, verdict, every finding with its evidence, and its copies."""
    check_format(fmt)
    store = open_store(load_settings(config, data_dir, db))
    try:
        row = store.get_message(mail_id)
        if row is None:
            raise fail(f"no message {mail_id}", 1)
        out = _summary(row)
        out.update(
            action=row.action, peer_ip=row.peer_ip, helo=row.helo, auth_user=row.auth_user,
            findings=[{"symbol": f.get("symbol"), "score": f.get("score"), "evidence": f.get("evidence", "")} for f in row.findings or []],
            copies=[{"recipient": d.recipient, "tracking_id": d.tracking_id, "status": d.status} for d in store.deliveries(mail_id)],
        )
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2, default=str))
        return
    console = output_console()
    console.print(f"{out['id']}  {out['status']} ({out['action']}, score {out['score']:.1f})  received {when(out['received_at'])}")
    console.print(f"from {out['mail_from'] or '<>'} (From: {out['from']})  peer {out['peer_ip']}  direction {out['direction']}"
                  + (f"  login {out['auth_user']}" if out["auth_user"] else ""))
    console.print(f"subject: {out['subject']}")
    for reason in out["reasons"]:
        console.print(f"  - {reason}")
    table = Table("symbol", "score", "evidence")
    for f in sorted(out["findings"], key=lambda f: -abs(float(f["score"] or 0))):
        table.add_row(str(f["symbol"]), f"{float(f['score'] or 0):.2f}", str(f["evidence"]))
    console.print(table)
    for c in out["copies"]:
        console.print(f"copy for {c['recipient']}: {c['status']} ({c['tracking_id']})")


@quarantine_app.command("release")
def release_cmd(
    mail_ids: Annotated[list[str], typer.Argument(help="One or more held message ids")],
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    reason: ReasonOpt = "",
    rcpt: Annotated[list[str] | None, typer.Option("--rcpt", help="Only this recipient's copy (repeatable)")] = None,
) -> None:
    """Deliver held messages to their recipients (each copy once), or only to --rcpt; released once no copy is held."""
    from mailmoat.deliver.service import DeliveryService, ReleaseError
    from mailmoat.store.quarantine import release_state

    check_format(fmt)
    settings = load_settings(config, data_dir, db)
    store = open_store(settings)
    delivery = DeliveryService(settings, store)
    results: list[dict[str, Any]] = []
    failed = 0

    async def release_all() -> None:
        nonlocal failed
        for mail_id in mail_ids:
            try:
                outcomes = await delivery.release(mail_id, rcpt or ())
            except ReleaseError as exc:
                failed += 1
                typer.echo(f"error: {exc}", err=True)
                continue
            copies = [{"recipient": o.recipient, "tracking_id": o.tracking_id, "status": o.status, "reply": o.reply} for o in outcomes]
            _audit(store, "quarantine.release", mail_id, {"copies": copies, "recipients": rcpt or []}, reason)
            results.append({"id": mail_id, "status": release_state(store, mail_id), "copies": copies})

    try:
        asyncio.run(release_all())
    finally:
        delivery.close()
        store.close()
    if fmt == "json":
        typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for r in results:
            typer.echo(f"{r['status']} {r['id']}: " + ", ".join(f"{c['recipient']} {c['status']}" for c in r["copies"]))
    if failed:
        raise typer.Exit(1)


def _one_by_one(store: Any, items: Sequence[Any], act: Callable[[Any, Any], str], errors: tuple[type[Exception], ...]) -> None:
    """`act(session, item)` for each item in a transaction of its own, printing what it returns;
    an item that fails with one of `errors` is named, the others still go ahead, and the exit
    status is 1."""
    failed = 0
    try:
        for item in items:
            try:
                with store.session() as s:
                    done = act(s, item)
            except errors as exc:
                failed += 1
                typer.echo(f"error: {exc}", err=True)
                continue
            typer.echo(done)
    finally:
        store.close()
    if failed:
        raise typer.Exit(1)


@quarantine_app.command("delete")
def delete_cmd(
    mail_ids: Annotated[list[str], typer.Argument(help="One or more held message ids")],
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
    reason: ReasonOpt = "",
) -> None:
    """Discard held messages: never delivered (the raw copy stays until retention ends)."""
    from mailmoat.store.audit import audit
    from mailmoat.store.quarantine import QuarantineError, discard

    def delete(s: Any, mail_id: str) -> str:
        discard(s, mail_id)
        audit(s, actor(), "quarantine.delete", mail_id, source="cli", note=reason)
        return f"deleted {mail_id}"

    _one_by_one(open_store(load_settings(config, data_dir, db)), mail_ids, delete, (QuarantineError,))


@quarantine_app.command("requests")
def requests_cmd(config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text") -> None:
    """Recipients' requests, from their digests, that a held copy be released, oldest first. Answer one
    with `release ID --rcpt RECIPIENT` or `decline REQUEST_ID`."""
    from mailmoat.digest.requests import open_requests, request_dict

    check_format(fmt)
    store = open_store(load_settings(config, data_dir, db))
    try:
        with store.session() as s:
            items = [{**request_dict(s, req, "open"), "message": _summary(msg)} for req, msg in open_requests(s)]
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps({"items": items}, ensure_ascii=False, indent=2))
        return
    console = output_console()
    if not items:
        console.print("no release request is waiting")
        return
    table = Table("request", "asked (UTC)", "recipient", "id", "from", "subject", "why held")
    for i in items:
        m = i["message"]
        table.add_row(str(i["id"]), when(i["requested_at"]), i["recipient"], m["id"], m["mail_from"] or m["from"] or "<>",
                      m["subject"], "; ".join(m["reasons"])[:120])
    console.print(table)
    console.print(f"{len(items)} waiting")


@quarantine_app.command("decline")
def decline_cmd(
    request_ids: Annotated[list[int], typer.Argument(min=1, max=MAX_DB_INT, help="One or more request numbers (see `quarantine requests`)")],
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
    reason: ReasonOpt = "",
) -> None:
    """Decline release requests: the copies stay held, the requests leave the list, and each
    recipient is told with the reason (`digest.tell_declines`)."""
    from mailmoat.digest.decline_notice import tell_declined
    from mailmoat.digest.requests import RequestError, decline
    from mailmoat.store.audit import audit

    settings = load_settings(config, data_dir, db)
    declined: list[tuple[str, str]] = []

    def decline_one(s: Any, request_id: int) -> str:
        out = decline(s, request_id, actor(), reason)
        audit(s, actor(), "quarantine.decline", out["mail_id"], source="cli",
              detail={"request": request_id, "recipient": out["recipient"]}, note=reason)
        declined.append((out["mail_id"], out["recipient"]))
        return f"declined request {request_id}: {out['recipient']}'s copy of {out['mail_id']} stays held"

    try:
        _one_by_one(open_store(settings), request_ids, decline_one, (RequestError,))
    finally:
        if declined and settings.digest.tell_declines:  # after the declines are committed
            store = open_store(settings)
            try:
                for mail_id, recipient in declined:
                    told = asyncio.run(tell_declined(settings, store, mail_id, recipient, reason))
                    typer.echo(f"{recipient} was told" if told else f"{recipient} could not be told (see the log)")
            finally:
                store.close()


@quarantine_app.command("raw")
def raw_cmd(
    mail_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
) -> None:
    """Write the retained raw message to standard output (`> suspect.eml`); never opened or rendered."""
    from mailmoat.blobstore import read_blob

    if sys.stdout.isatty():  # a hostile message's bytes would drive the terminal (escape sequences)
        raise fail(f"the raw message is not shown on a terminal: mailmoat quarantine raw {mail_id} > message.eml")
    store = open_store(load_settings(config, data_dir, db))
    try:
        row = store.get_message(mail_id)
        if row is None:
            raise fail(f"no message {mail_id}", 1)
        try:
            raw = read_blob(row.raw_path, store.engine) if row.raw_path else None
        except OSError:
            raw = None
        if raw is None:
            raise fail(f"the raw message of {mail_id} is no longer retained", 1)
        _audit(store, "message.download", mail_id)
    finally:
        store.close()
    sys.stdout.buffer.write(raw)
    sys.stdout.buffer.flush()


def register(app: typer.Typer) -> None:
    app.add_typer(quarantine_app, name="quarantine")
