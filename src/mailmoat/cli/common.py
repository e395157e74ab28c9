"""What the commands share: the options every command takes (-c, --data-dir, --db), Settings from them, the record, and printing text that comes from mail."""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from mailmoat import config
from mailmoat.config import ConfigError, Settings

# `--limit` of the listing commands: more than a screen or an export needs, and a number the
# database takes (a larger one ended in an OverflowError traceback; 0 or less lists nothing useful).
MAX_LIMIT = 100_000

if TYPE_CHECKING:
    from mailmoat.store.db import Store

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


def policy_settings(settings: Settings, config_path: Path | None) -> None:
    """End the command (exit 2) on `[policy]` settings the workers could not build their policy
    from (`config.check_policy`), in the words and form of any other refused setting."""
    try:
        config.check_policy(settings)
    except ConfigError as exc:
        raise fail(f"{config_path}: {exc}" if config_path is not None else str(exc)) from exc


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


# Characters that drive a terminal (ESC starts colour, title and clipboard sequences; C1 controls
# do in 8-bit terminals) or reorder what is shown (bidi overrides): never passed through from mail.
_DRIVES_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown(text: str) -> str:
    """Text from mail as it may reach a terminal: control and bidi-override characters written out
    ("\\x1b"), everything else as it is."""
    return _DRIVES_TERMINAL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


class _MailTextConsole(Console):
    """Every string it prints (arguments and table cells alike) goes through `shown` first."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(shown(text), **kwargs)


def output_console(stderr: bool = False) -> Console:
    """A console for text that comes from mail: subjects, names and evidence are printed as they are
    written, never read as markup ("[/b]" would end the command with an error) nor passed to the
    terminal as control sequences. Piped into a file or grep, lines are not folded at 80 columns."""
    console = _MailTextConsole(markup=False, stderr=stderr)
    return console if console.is_terminal else _MailTextConsole(markup=False, stderr=stderr, width=240)


def check_format(fmt: str) -> None:
    """`--format` is text or json (the command ends with a usage error otherwise)."""
    if fmt not in ("text", "json"):
        raise fail(f"--format must be text or json, not {fmt!r}")


def time_range(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """`--since` and `--until` (3d, 12h, 30m ago, or an ISO date) as epoch seconds."""
    from mailmoat.recall.selection import SelectionError, parse_time

    try:
        return (parse_time(since) if since else None, parse_time(until) if until else None)
    except SelectionError as exc:
        raise fail(str(exc)) from exc


def require_data(settings: Settings) -> None:
    """End the command (exit 2) when the SQLite database of the settings is not there.

    Opening a store creates its directory and database: right for `serve`, `users ensure-admin`,
    `train` or `check`, wrong for a command that only reads the record, which would report a new,
    empty store at a mistyped --data-dir or --db as healthy ("nothing needs attention").
    Another database (PostgreSQL) is not created by opening it, and answers for itself."""
    from mailmoat.store.db import normalise_url, sqlite_file

    db_file = sqlite_file(normalise_url(settings.db_url))
    if db_file is not None and not db_file.exists():
        what = f"no mailmoat data at {db_file}: no such database" if settings.db else (
            f"no mailmoat data at {settings.data_path}: {db_file.name} is not there")
        raise fail(f"{what} (a mistyped --data-dir, --db or MAILMOAT_DATA_DIR? `mailmoat serve` creates it)")


def open_store(settings: Settings) -> Store:
    """The record, or a clear error when it is not there (see `require_data`: the commands that open
    it read or change recorded mail, and never create a store) or cannot be opened."""
    from mailmoat.store.db import Store

    require_data(settings)
    try:
        return Store(settings.db_url)
    except Exception as exc:
        raise fail(f"cannot open the database: {exc}") from exc
