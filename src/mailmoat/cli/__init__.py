"""The `mailmoat` command: one typer app; each sub-module registers its own commands."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="mailmoat",
    help="mailmoat — email security gateway: SMTP in, scan, decide, act, record, recall.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`; the order is the order of `mailmoat --help`.
_COMMAND_MODULES = ["serve", "check", "scan", "status", "trace", "quarantine", "digest", "lists", "rules", "train", "recall", "reports", "waves", "incidents", "audit", "users", "backup", "web", "worker"]


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mailmoat.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mailmoat.cli.{name}":
                continue  # that command group is not built yet
            raise
        module.register(app)


_register_all()


def main() -> None:
    app()
