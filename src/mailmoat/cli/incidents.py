"""`mailmoat incidents list|show|release`: compromised-account incidents."""

from __future__ import annotations

import json
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
    fail,
    load_settings,
    open_store,
    output_console,
    when,
)

incidents_app = typer.Typer(help="Compromised-account incidents: list, show, release.", no_args_is_help=True)
console = output_console()


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str, indent=2))


@incidents_app.command("list")
def list_cmd(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    state: Annotated[str, typer.Option("--state", help="open or released")] = "",
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT)] = 50,
) -> None:
    """Incidents, newest first."""
    from mailmoat.accounts.incidents import list_incidents

    items = list_incidents(open_store(load_settings(config, data_dir, db)), limit, state)
    if fmt == "json":
        _json([i.to_dict() for i in items])
        return
    t = Table("id", "account", "state", "held", "opened", "reasons")
    for i in items:
        t.add_row(i.id, i.account, i.state, "yes" if i.held else "no", when(i.opened_at), "; ".join(i.reasons)[:80])
    console.print(t)


@incidents_app.command("show")
def show_cmd(
    incident_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
) -> None:
    """One incident: evidence, alerts, held messages and recall jobs."""
    from mailmoat.accounts.incidents import show_incident

    item = show_incident(open_store(load_settings(config, data_dir, db)), incident_id)
    if item is None:
        raise fail(f"no incident {incident_id}", 1)
    if fmt == "json":
        _json(item)
        return
    console.print(f"incident {item['id']}  account {item['account']}  state {item['state']}  "
                  f"held {'yes' if item['held'] else 'no'}  mode {item['mode']}")
    console.print(f"opened {when(item['opened_at'])}; suspect since {when(item['first_suspect_at'])} "
                  f"({item['suspect_messages']} messages)")
    for r in item["reasons"]:
        console.print(f"  - {r}")
    console.print(f"alerts: {item['alerts']}")
    console.print(f"held messages: {len(item['held_messages'])}; recalled copies: {item['recalled_copies']}")
    for j in item["recalls"]:
        console.print(f"  recall {j['id']}: {j['state']} {j['counts']}")
    if item["released_at"]:
        console.print(f"released {when(item['released_at'])} by {item['released_by']}: {item['note']}")


@incidents_app.command("release")
def release_cmd(
    incident_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    note: Annotated[str, typer.Option("--note", help="Why the account is released (kept in the audit log)")] = "",
) -> None:
    """Close an incident and lift the hold on its account."""
    from mailmoat.accounts.incidents import IncidentError, release_incident

    try:
        inc = release_incident(open_store(load_settings(config, data_dir, db)), incident_id, actor(), note, source="cli")
    except IncidentError as exc:
        raise fail(str(exc), 1) from exc
    if fmt == "json":
        _json(inc.to_dict())
    else:
        console.print(f"released {inc.account} (incident {inc.id})")


def register(app: typer.Typer) -> None:
    app.add_typer(incidents_app, name="incidents")
