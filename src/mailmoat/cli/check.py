"""`mailmoat check`: is this installation set up right? Each thing the configuration names, tried (exit 1 on a failure)."""

from __future__ import annotations

import asyncio
import json

import typer

from mailmoat.cli.common import (
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    FormatOpt,
    check_format,
    load_settings,
    policy_settings,
)

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check_cmd(config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None, fmt: FormatOpt = "text") -> None:
        """Data dir, database, delivery, ClamAV, DNS, recall backend, STARTTLS certificate and classifier, each tried (exit 1: a failure)."""
        from mailmoat.check import run_checks

        check_format(fmt)
        settings = load_settings(config, data_dir, db)
        policy_settings(settings, config)
        checks = asyncio.run(run_checks(settings))
        if fmt == "json":
            typer.echo(json.dumps([c.to_dict() for c in checks], ensure_ascii=False, indent=2))
        else:
            for c in checks:
                typer.echo(f"{_MARK[c.state]}  {c.name}: {c.detail}")
        if any(c.state == "fail" for c in checks):
            raise typer.Exit(1)
