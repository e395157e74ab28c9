"""Options every command takes (-c, --data-dir, --db) and turning them into Settings."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mailmoat import config
from mailmoat.config import ConfigError, Settings

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="mailmoat.toml (default: embedded defaults)")
]
DataDirOpt = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="MAILMOAT_DATA_DIR", help="Where spool, store, models and local mailboxes live"),
]
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the data dir)")]
FormatOpt = Annotated[str, typer.Option("--format", help="Output format: text or json")]


def load_settings(config_path: Path | None, data_dir: str | None, db: str | None) -> Settings:
    """Config file, then command-line overrides; a bad file ends the command with a clear message."""
    try:
        settings = config.load(config_path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if data_dir:
        settings.data_dir = data_dir
    if db:
        settings.db = db
    return settings


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error for the operator and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def when(ts: float) -> str:
    """A stored time for the operator, in UTC ("-" when there is none)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def actor() -> str:
    """Who acts from the command line, as the audit log names them: cli:<login>."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "cli"


def output_console(stderr: bool = False) -> Console:
    """A console that prints text as it is: subjects, names and evidence come from mail, where
    "[/b]" is text, not markup (read as markup it would end the command with an error). Piped into
    a file or grep, lines are not folded at 80 columns."""
    console = Console(markup=False, stderr=stderr)
    return console if console.is_terminal else Console(markup=False, stderr=stderr, width=240)
