"""`mailmoat backup DEST`: a copy of the data dir, taken while the gateway runs, that runs as a data dir itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, FormatOpt, check_format, fail, load_settings


def register(app: typer.Typer) -> None:
    @app.command("backup")
    def backup_cmd(
        dest: Annotated[Path, typer.Argument(help="A new or empty directory outside the data dir")],
        config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text",
    ) -> None:
        """Back up the record (a consistent SQLite snapshot) and every file of the data dir but the spool."""
        from mailmoat.store.backup import BackupError, backup

        check_format(fmt)
        settings = load_settings(config, data_dir, db)
        try:
            report = backup(settings, dest)
        except (BackupError, OSError) as exc:
            raise fail(str(exc)) from exc
        if fmt == "json":
            typer.echo(json.dumps({
                "dest": str(report.dest), "database": report.database, "messages": report.messages,
                "deliveries": report.deliveries, "files": report.files, "bytes": report.bytes,
                "vanished": report.vanished, "skipped": report.skipped,
            }, indent=2))
            return
        typer.echo(f"backup in {report.dest}")
        typer.echo(f"  record: {report.database}; {report.messages} messages, {report.deliveries} delivered or held copies")
        typer.echo(f"  files: {report.files} ({report.bytes / 1e6:.1f} MB)"
                   + (f"; {report.vanished} removed while copying" if report.vanished else ""))
        for path in report.skipped:
            typer.echo(f"  not copied (not a regular file): {path}")
        typer.echo(f"  to run on it: mailmoat serve --data-dir {report.dest}")
