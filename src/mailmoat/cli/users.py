"""`mailmoat users`: console accounts and API tokens from the command line (add, list, passwd, token, ensure-admin)."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer
from sqlalchemy import select

from mailmoat.cli.common import ConfigOpt, DataDirOpt, DbOpt, fail, load_settings, require_data
from mailmoat.config import Settings
from mailmoat.store.audit import audit
from mailmoat.store.db import Store

ADMIN_ENV = "MAILMOAT_ADMIN_PASSWORD"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:{os.getuid()}"


def _store(settings: Settings, *, existing: bool = False) -> Store:
    """`existing`: for a command about users already there, never run on a new store (require_data)."""
    if existing:
        require_data(settings)
    return Store(settings.db_url, raw_dir=settings.raw_dir)


def _read_password(from_stdin: bool, confirm: bool = True) -> str:
    if from_stdin:
        try:
            pw = sys.stdin.readline().rstrip("\r\n")
            # Under a C locale stdin reads bytes that are not UTF-8 as lone surrogates, which the
            # password hash cannot encode: check here, where the error can say what is wrong.
            pw.encode("utf-8")
        except UnicodeError as exc:
            raise fail("the password on stdin is not UTF-8 text") from exc
        return pw
    pw = typer.prompt("Password", hide_input=True)
    if confirm and typer.prompt("Repeat", hide_input=True) != pw:
        raise fail("the passwords differ")
    return str(pw)


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="Console users and API tokens.", no_args_is_help=True)
    app.add_typer(users_app, name="users")

    @users_app.command("add")
    def add(
        username: Annotated[str, typer.Argument(help="User name (e.g. an e-mail address)")],
        role: Annotated[str, typer.Option("--role", help="admin, analyst or auditor")] = "analyst",
        password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Create a console user."""
        from mailmoat.web.auth import AuthError, create_user

        settings = load_settings(config, data_dir, db)
        password = _read_password(password_stdin)
        store = _store(settings)
        try:
            with store.session() as s:
                u = create_user(s, username, password, role)
                audit(s, _actor(), "user.create", u.username, source="cli", detail={"role": role})
        except AuthError as exc:
            raise fail(str(exc)) from exc
        finally:
            store.close()
        typer.echo(f"created {u.username} ({u.role})")

    @users_app.command("list")
    def list_users(config: ConfigOpt = None, data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
        """List console users."""
        from mailmoat.store.web_models import UserRow

        settings = load_settings(config, data_dir, db)
        store = _store(settings, existing=True)
        try:
            with store.session() as s:
                for u in s.scalars(select(UserRow).order_by(UserRow.username)):
                    state = " (disabled)" if u.disabled else ""
                    typer.echo(f"{u.username:40} {u.role}{state}")
        finally:
            store.close()

    @users_app.command("passwd")
    def passwd(
        username: str,
        password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Set a user's password (ends the user's console sessions)."""
        from mailmoat.web.auth import AuthError, get_user, set_password

        settings = load_settings(config, data_dir, db)
        require_data(settings)  # before the password is asked for
        password = _read_password(password_stdin)
        store = _store(settings)
        try:
            with store.session() as s:
                u = get_user(s, username)
                if u is None:
                    raise fail(f"no user {username}")
                set_password(s, u, password)
                audit(s, _actor(), "user.update", u.username, source="cli", detail={"password": "changed"})
        except AuthError as exc:
            raise fail(str(exc)) from exc
        finally:
            store.close()
        typer.echo(f"password of {username} changed")

    @users_app.command("token")
    def token(
        username: str,
        name: Annotated[str, typer.Option("--name", help="What the token is for")] = "",
        expires_days: Annotated[float, typer.Option("--expires-days", help="0 = never")] = 0.0,
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Create an API token for a user and print it (shown only this once)."""
        from mailmoat.web.auth import AuthError, create_token, get_user

        settings = load_settings(config, data_dir, db)
        store = _store(settings, existing=True)
        try:
            with store.session() as s:
                u = get_user(s, username)
                if u is None:
                    raise fail(f"no user {username}")
                try:
                    row, secret = create_token(s, u, name, expires_days)
                except AuthError as exc:
                    raise fail(str(exc)) from exc
                audit(s, _actor(), "token.create", str(row.id), source="cli", detail={"user": u.username, "name": name})
        finally:
            store.close()
        typer.echo(secret)

    @users_app.command("ensure-admin")
    def ensure_admin(
        username: Annotated[str, typer.Option("--username", help="Name of the first administrator")] = "admin",
        config: ConfigOpt = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Create the first administrator if there is no user yet; prints a random password once
        (or uses MAILMOAT_ADMIN_PASSWORD / web.admin_password)."""
        from mailmoat.store.web_models import UserRow
        from mailmoat.web.auth import AuthError, create_user, random_password

        settings = load_settings(config, data_dir, db)
        given = os.environ.get(ADMIN_ENV) or settings.web.admin_password
        store = _store(settings)
        try:
            with store.session() as s:
                if s.scalars(select(UserRow.id).limit(1)).first() is not None:
                    typer.echo("users exist already: nothing to do")
                    return
                password = given or random_password()
                u = create_user(s, username, password, "admin")
                audit(s, _actor(), "user.create", u.username, source="cli", detail={"role": "admin", "first_admin": True})
        except AuthError as exc:
            raise fail(str(exc)) from exc
        finally:
            store.close()
        if given:
            typer.echo(f"created administrator {username} with the password from {ADMIN_ENV if os.environ.get(ADMIN_ENV) else 'web.admin_password'}")
        else:
            typer.echo(f"created administrator {username}; password (shown once): {password}")
