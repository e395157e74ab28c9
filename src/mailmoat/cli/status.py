"""`mailmoat status`: is mail flowing? The spool, the delivery queue, the quarantine, the last hour; exit 1 when something needs attention."""

from __future__ import annotations

import json

import typer

from mailmoat.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    FormatOpt,
    check_format,
    load_settings,
    open_store,
)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text") -> None:
        """Spool backlog, delivery queue, quarantine, the last hour's verdicts, incidents and recalls (exit 1: needs attention)."""
        from mailmoat.status import gather

        check_format(fmt)
        settings = load_settings(config, data_dir, db)
        store = open_store(settings)
        try:
            st = gather(settings, store)
        finally:
            store.close()
        if fmt == "json":
            typer.echo(json.dumps(st.to_dict(), indent=2, ensure_ascii=False))
        else:
            spool_age = f", oldest {_age(st.spool_oldest_age)}" if st.spool_waiting + st.spool_processing else ""
            typer.echo(f"spool: {st.spool_waiting} waiting, {st.spool_processing} being processed, "
                       f"{st.spool_deferred} to scan again later{spool_age}")
            queue = ", ".join(f"{n} {k}" for k, n in sorted(st.queue.items())) or "empty"
            typer.echo(f"delivery queue: {queue}; {st.failed_24h} failed in the last 24 h")
            typer.echo(f"quarantine: {st.held} held")
            hour = ", ".join(f"{n} {k}" for k, n in sorted(st.last_hour.items(), key=lambda kv: -kv[1])) or "no mail"
            typer.echo(f"last hour: {hour}")
            typer.echo(f"incidents open: {st.open_incidents}; recalls unsettled: {st.recalls_unsettled}")
            typer.echo(f"disk: {st.disk_free_bytes / 2**30:.1f} GiB free ({st.disk_free_fraction:.0%}) under the data dir")
            for item in st.attention:
                typer.echo(f"attention: {item['text']}")
            if not st.attention:
                typer.echo("nothing needs attention")
        if st.attention:
            raise typer.Exit(1)
