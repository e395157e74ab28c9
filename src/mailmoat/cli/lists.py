"""`mailmoat lists`: the allow and deny entries kept in the store (every node applies them within seconds)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from mailmoat.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    FormatOpt,
    actor,
    check_format,
    load_settings,
    open_store,
    output_console,
    when,
)
from mailmoat.policy.site_lists import MAX_DAYS
from mailmoat.store.queries import MAX_DB_INT

lists_app = typer.Typer(help="Allow and deny lists kept in the store: list, allow, deny, import, remove; recipients' safe senders.",
                        no_args_is_help=True)

KindArg = Annotated[str, typer.Argument(help="sender (an address), domain (and its sub-domains) or ip (an address or network)")]
ValueArg = Annotated[str, typer.Argument(help="The address, domain or network")]
NoteOpt = Annotated[str, typer.Option("--note", help="Why (kept with the entry and in the audit log)")]
DaysOpt = Annotated[float, typer.Option("--days", min=0, help=f"Expires after this many days, up to {MAX_DAYS:g} (0 = never)")]
IdsArg = Annotated[list[int], typer.Argument(min=1, max=MAX_DB_INT, help="Entry ids (see `mailmoat lists list`)")]


def _audit_add(session: Any, entry: dict[str, Any], new: bool, note: str, days: float, source_file: str | None = None) -> None:
    """The audit row of one entry added or updated from the command line (`source_file`: by `lists import`);
    `entry` says how an entry already there was (`was`)."""
    from mailmoat.policy.site_lists import audit_target
    from mailmoat.store.audit import audit

    detail = {**entry, "new": new, "days": days, **({"import": source_file} if source_file is not None else {})}
    audit(session, actor(), "list.add", audit_target(entry), source="cli", detail=detail, note=note)


def _add(list_: str, kind: str, value: str, note: str, days: float, config: ConfigOpt, data_dir: DataDirOpt, db: DbOpt) -> None:
    from mailmoat.policy.site_lists import ListError, add_to_store

    store = open_store(load_settings(config, data_dir, db))
    try:
        # The command line is the server's own operator: it may remove entries, so it may replace one.
        entry, new = add_to_store(store, list_, kind.strip().lower(), value, note=note, by=actor(), days=days, may_remove=True)
        with store.session() as s:
            _audit_add(s, entry, new, note, days)
    except ListError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    ends = f", until {when(entry['expires_at'])} UTC" if entry["expires_at"] else ""
    typer.echo(f"{'added' if new else 'updated'} #{entry['id']} {list_} {entry['kind']} {entry['value']}{ends}")


@lists_app.command("allow")
def allow_cmd(kind: KindArg, value: ValueArg, note: NoteOpt = "", days: DaysOpt = 0.0,
              config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
    """Deliver mail from a sender, a domain or a network whatever the engines say (a sender's only while DMARC does not fail)."""
    _add("allow", kind, value, note, days, config, data_dir, db)


@lists_app.command("deny")
def deny_cmd(kind: KindArg, value: ValueArg, note: NoteOpt = "", days: DaysOpt = 0.0,
             config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
    """Reject mail from a sender, a domain or a network."""
    _add("deny", kind, value, note, days, config, data_dir, db)


@lists_app.command("import")
def import_cmd(
    list_: Annotated[str, typer.Argument(metavar="LIST", help="allow or deny")],
    file: Annotated[typer.FileBinaryRead, typer.Argument(help="One address, domain or network a line (# comments), UTF-8; - for stdin")],
    note: NoteOpt = "", days: DaysOpt = 0.0,
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
) -> None:
    """Add many entries at once, each line's kind told by its form (an address, a domain or @domain,
    an IP or network): a list exported from another gateway. Refused lines are named; exit 1 if any."""
    from sqlalchemy.exc import IntegrityError

    from mailmoat.policy.site_lists import LISTS, ListError, add, check_days, entry_dict, kind_of

    if list_ not in LISTS:
        typer.echo(f"error: LIST must be allow or deny, not {list_!r}", err=True)
        raise typer.Exit(2)
    try:
        check_days(days)
    except ListError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    source = getattr(file, "name", "")
    # Read as bytes and decoded line by line, so that a file in another encoding is named with the
    # first line that is not UTF-8, and refused whole: its other lines may be just as misread.
    values: list[tuple[int, str]] = []
    for n, raw in enumerate(file.read().splitlines(), 1):
        try:
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            typer.echo(f"error: {source or 'the file'}: line {n} is not UTF-8 text (save it as UTF-8); nothing imported", err=True)
            raise typer.Exit(2) from exc
        values.append((n, line.split("#", 1)[0].strip()))
    store = open_store(load_settings(config, data_dir, db))

    def once() -> tuple[int, int, list[str]]:
        added = updated = 0
        problems: list[str] = []
        with store.session() as s:  # one transaction: the whole file or, on a database error, none of it
            for n, value in values:
                if not value:
                    continue
                try:
                    row, new, was = add(s, list_, kind_of(value), value, note=note, by=actor(), days=days, may_remove=True)
                except ListError as exc:
                    problems.append(f"line {n}: {exc}")
                    continue
                if new:
                    added += 1
                else:
                    updated += 1
                entry = {**entry_dict(row), **({"was": was} if was is not None else {})}
                _audit_add(s, entry, new, note, days, source_file=source)
        return added, updated, problems

    try:
        try:
            added, updated, problems = once()
        except IntegrityError:  # someone added one of these entries meanwhile: the second pass updates it
            added, updated, problems = once()
    finally:
        store.close()
    for problem in problems:
        typer.echo(problem, err=True)
    refused = len(problems)
    typer.echo(f"{list_}: {added} added, {updated} updated, {refused} refused")
    if refused:
        raise typer.Exit(1)


@lists_app.command("list")
def list_cmd(config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text") -> None:
    """Every entry in force (the configuration file's policy lists are not shown here)."""
    from mailmoat.policy.site_lists import entries, entry_dict

    def read(store: Any) -> list[dict[str, Any]]:
        with store.session() as s:
            return [entry_dict(r) for r in entries(s)]

    _show(read, config, data_dir, db, fmt, "no entries (policy.allow_* and policy.deny_* in the configuration still apply)",
          ("id", "list", "kind", "value", "expires (UTC)", "by", "note"),
          lambda e: [str(e["id"]), e["list"], e["kind"], e["value"], _expiry(e["expires_at"]), e["created_by"], e["note"]])


def _expiry(ts: float) -> str:
    """An entry's expiry for the table; a stored time that is no time (`inf`, from before days were
    checked) is shown as it is, since the listing is how an operator finds the entry to remove."""
    if not ts:
        return "never"
    try:
        return when(ts)
    except (OverflowError, OSError, ValueError):
        return f"{ts!r} (not a time)"


def _show(read: Callable[[Any], list[dict[str, Any]]], config: ConfigOpt, data_dir: DataDirOpt, db: DbOpt, fmt: str,
          empty: str, columns: tuple[str, ...], row: Callable[[dict[str, Any]], list[str]]) -> None:
    """Items read from the store, as JSON ({"items": [...]}) or a table."""
    check_format(fmt)
    store = open_store(load_settings(config, data_dir, db))
    try:
        items = read(store)
    finally:
        store.close()
    if fmt == "json":
        typer.echo(json.dumps({"items": items}, ensure_ascii=False, indent=2))
        return
    if not items:
        typer.echo(empty)
        return
    table = Table(*columns)
    for e in items:
        table.add_row(*row(e))
    output_console().print(table)


@lists_app.command("remove")
def remove_cmd(entry_ids: IdsArg,
               config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
    """Take entries off their lists."""
    from mailmoat.policy.site_lists import audit_target, entry_dict
    from mailmoat.store.audit import audit
    from mailmoat.store.list_models import SenderListRow

    store = open_store(load_settings(config, data_dir, db))
    missing = 0
    try:
        for entry_id in entry_ids:
            with store.session() as s:
                row = s.get(SenderListRow, entry_id)
                if row is None:
                    missing += 1
                    typer.echo(f"error: no entry #{entry_id}", err=True)
                    continue
                entry = entry_dict(row)
                s.delete(row)
                audit(s, actor(), "list.remove", audit_target(entry), source="cli", detail=entry)
            typer.echo(f"removed #{entry_id} {entry['list']} {entry['kind']} {entry['value']}")
    finally:
        store.close()
    if missing:
        raise typer.Exit(1)


@lists_app.command("safe")
def safe_cmd(
    rcpt: Annotated[str, typer.Option("--rcpt", help="Only this recipient's")] = "",
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
) -> None:
    """Recipients' safe senders, chosen on their digests' release pages: their copy of later spam from it is released at once."""
    from mailmoat.digest import safe_senders

    _show(lambda store: safe_senders.entries(store, rcpt), config, data_dir, db, fmt, "no safe senders",
          ("id", "recipient", "sender", "since (UTC)", "via"),
          lambda e: [str(e["id"]), e["recipient"], e["sender"], when(e["created_at"]), e["via"]])


@lists_app.command("safe-remove")
def safe_remove_cmd(
    entry_ids: Annotated[list[int], typer.Argument(min=1, max=MAX_DB_INT, help="Entry ids (see `mailmoat lists safe`)")],
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None,
) -> None:
    """Take safe senders off recipients' lists: that mail is held again like anyone's."""
    from mailmoat.digest import safe_senders
    from mailmoat.store.audit import audit

    store = open_store(load_settings(config, data_dir, db))
    missing = 0
    try:
        for entry_id in entry_ids:
            entry = safe_senders.remove(store, entry_id)
            if entry is None:
                missing += 1
                typer.echo(f"error: no safe sender {entry_id}", err=True)
                continue
            with store.session() as s:
                audit(s, actor(), "safe_sender.remove", f"{entry['recipient']}:{entry['sender']}", source="cli", detail=entry)
            typer.echo(f"removed #{entry_id}: {entry['recipient']} no longer keeps {entry['sender']} as safe")
    finally:
        store.close()
    if missing:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(lists_app, name="lists")
